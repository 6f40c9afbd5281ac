package main

import (
	"context"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sendpilot-loader/cmd/sendpilot-loader/e2etest"
	"sendpilot-loader/load/duckdb"
)

// The promise, end to end: many clients post a corpus (10% of it twice, plus bad inputs) to the real binary
// with signatures enforced, while its schedule loads every second and the process is killed with SIGKILL at
// random moments, some of its runs killing themselves in the middle of a load. Afterwards the warehouse holds
// exactly the acknowledged events, once each, with all their child rows, and every input got its documented
// answer.
func TestEndToEndExactlyOnceUnderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run")
	}
	dataDir := t.TempDir()
	args := []string{"--webhook-secret", testSecret, "--signature-mode", "enforce", "--schedule", "@every 1s",
		"--segment-max-age", "300ms", "--max-body-bytes", "2MiB"}
	var (
		mu  sync.Mutex
		cur *e2etest.Server
	)
	start := func(env ...string) {
		// Small batches, so that loads are frequent and short, and kills often land inside one.
		s := e2etest.Start(t, binary, dataDir, append(env, "SENDPILOT_LOAD_MAX_BATCH_BYTES=8MiB"), args...)
		mu.Lock()
		cur = s
		mu.Unlock()
	}
	targets := func() []string {
		mu.Lock()
		defer mu.Unlock()
		if cur == nil || cur.Exited() {
			return nil
		}
		return []string{cur.URL}
	}
	start()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	done := make(chan *e2etest.Outcome, 1)
	go func() {
		done <- e2etest.Send(ctx, e2etest.Traffic{
			Secret: testSecret, Events: 4000, Resend: 0.1, Bad: 15, Clients: 16, Rate: 160, Seed: 42,
			MaxBodyBytes: 2 << 20, Targets: targets, Deadline: time.Now().Add(3 * time.Minute),
		})
	}()

	// Chaos: every 0.3–0.9 s kill the server and start it again. Two of the starts are set to kill themselves
	// right after the transform step of their first load instead, so some kills land inside a load for certain;
	// those are left alone until they do (or for 5 s).
	rng := rand.New(rand.NewPCG(42, 1))
	var outcome *e2etest.Outcome
	kills, selfKills, starts := 0, 0, 1
	next := time.Now().Add(500 * time.Millisecond)
	hooked := false
	for outcome == nil {
		select {
		case outcome = <-done:
			continue
		case <-time.After(50 * time.Millisecond):
		}
		mu.Lock()
		s := cur
		mu.Unlock()
		switch {
		case s.Exited(): // a run with the crash hook killed itself during a load
			selfKills++
		case time.Now().After(next) && kills < 15 && (!hooked || time.Now().After(next.Add(5*time.Second))):
			s.Kill(t)
			kills++
		default:
			continue
		}
		starts++
		hooked = starts%3 == 2 && selfKills < 2
		if hooked {
			start("SENDPILOT_TEST_CRASH_AFTER_STEP=transformed")
		} else {
			start()
		}
		next = time.Now().Add(time.Duration(300+rng.IntN(600)) * time.Millisecond)
	}
	mu.Lock()
	last := cur
	mu.Unlock()
	if hooked { // it would kill itself in the final load of its shutdown
		last.Kill(t)
		start()
		last = cur
	}
	last.Stop(t) // seals the active segment
	t.Logf("%d acknowledged, %d requests (%d retried), %d kills, %d kills inside a load", len(outcome.Acked), outcome.Posts, outcome.Retries, kills, selfKills)
	if kills < 5 || selfKills < 2 {
		t.Errorf("too little chaos: %d kills, %d inside a load", kills, selfKills)
	}

	// Drain what is left with the load command, as an operator would after stopping the service.
	for i := 0; ; i++ {
		out, err := exec.Command(binary, "load", "--data-dir", dataDir).CombinedOutput()
		if err != nil {
			t.Fatalf("load: %v\n%s", err, out)
		}
		if strings.Contains(string(out), "nothing to load") {
			break
		}
		if i == 20 {
			t.Fatalf("still loading after 20 runs:\n%s", out)
		}
	}
	if outcome.Expect.Leads == 0 || outcome.Expect.Experience == 0 || outcome.Expect.Education == 0 {
		t.Errorf("the corpus carried no leads, experience or education (%+v): the child tables were not exercised", outcome.Expect)
	}
	e2etest.Check(t, outcome, func(q string) [][]any {
		res, err := duckdb.Query(context.Background(), filepath.Join(dataDir, "warehouse.duckdb"), q, duckdb.QueryOptions{})
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return res.Rows
	})
}
