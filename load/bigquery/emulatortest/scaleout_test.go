package emulatortest

import (
	"context"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	bq "cloud.google.com/go/bigquery"
	"google.golang.org/api/iterator"

	"sendpilot-loader/cmd/sendpilot-loader/e2etest"
)

const scaleSecret = "whsec_scale_out"

// Two serve replicas, each with its own data directory, receive one workspace's webhooks: each delivery goes
// to either at random, so SendPilot's resends often reach the other replica. Both load on their schedule into
// the same BigQuery dataset (the emulator), one is killed with SIGKILL and restarted on the way, and the tables
// still hold each acknowledged event exactly once. The events are outreach events only: the emulator runs a
// MERGE as a nested loop in SQLite, far too slow for the corpus's jobs with hundreds of leads each (the DuckDB
// end-to-end test covers those).
func TestTwoReplicasLoadEachEventOnce(t *testing.T) {
	opts, url := emulator(t)
	host := strings.TrimPrefix(url, "http://")
	bin := e2etest.Build(t)
	env := []string{"SENDPILOT_BIGQUERY_PROJECT=" + project, "SENDPILOT_BIGQUERY_DATASET=" + dataset,
		"SENDPILOT_BIGQUERY_EMULATOR_HOST=" + host, "SENDPILOT_LOAD_MAX_BATCH_BYTES=4MiB"}
	args := []string{"--webhook-secret", scaleSecret, "--schedule", "@every 1s", "--segment-max-age", "300ms", "--max-body-bytes", "2MiB"}
	dirs := []string{t.TempDir(), t.TempDir()}

	var mu sync.Mutex
	replicas := make([]*e2etest.Server, 2)
	for i := range replicas {
		replicas[i] = e2etest.Start(t, bin, dirs[i], env, args...)
	}
	targets := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var urls []string
		for _, r := range replicas {
			if r != nil && !r.Exited() {
				urls = append(urls, r.URL)
			}
		}
		return urls
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done := make(chan *e2etest.Outcome, 1)
	go func() {
		done <- e2etest.Send(ctx, e2etest.Traffic{
			Secret: scaleSecret, Events: 400, OutreachOnly: true, Resend: 0.1, Bad: 5, Clients: 8, Rate: 40, Seed: 7,
			MaxBodyBytes: 2 << 20, Targets: targets, Deadline: time.Now().Add(4 * time.Minute),
		})
	}()
	time.Sleep(time.Duration(3000+rand.IntN(3000)) * time.Millisecond)
	mu.Lock()
	victim := replicas[0]
	replicas[0] = nil
	mu.Unlock()
	victim.Kill(t)
	restarted := e2etest.Start(t, bin, dirs[0], env, args...)
	mu.Lock()
	replicas[0] = restarted
	mu.Unlock()

	outcome := <-done
	for i, r := range replicas {
		r.Stop(t)
		for n := 0; ; n++ { // drain what is left, as an operator would
			cmd := exec.Command(bin, "load", "--data-dir", dirs[i])
			cmd.Env = append(cmd.Environ(), env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("load replica %d: %v\n%s", i, err, out)
			}
			if strings.Contains(string(out), "nothing to load") {
				break
			}
			if n == 20 {
				t.Fatalf("replica %d still loading after 20 runs:\n%s", i, out)
			}
		}
	}
	t.Logf("%d acknowledged over 2 replicas, %d requests (%d retried)", len(outcome.Acked), outcome.Posts, outcome.Retries)

	c, err := bq.NewClient(ctx, project, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e2etest.Check(t, outcome, func(q string) [][]any {
		qq := c.Query(q)
		qq.DefaultProjectID, qq.DefaultDatasetID = project, dataset
		it, err := qq.Read(ctx)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var rows [][]any
		for {
			var row []bq.Value
			err := it.Next(&row)
			if err == iterator.Done {
				return rows
			}
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			out := make([]any, len(row))
			for i, v := range row {
				out[i] = v
			}
			rows = append(rows, out)
		}
	})
}
