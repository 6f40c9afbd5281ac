package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sendpilot-loader/cmd/sendpilot-loader/e2etest"
	"sendpilot-loader/extract"
	"sendpilot-loader/extract/buffer"
	"sendpilot-loader/extract/envelope"
	"sendpilot-loader/internal/record"
)

// binary is the sendpilot-loader executable built once for the tests that run it as a separate process.
var binary string

func TestMain(m *testing.M) {
	if os.Getenv("SENDPILOT_TEST_HOLD") != "" { // a helper process of TestQueryWaitsForALoad: no binary needed
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "sendpilot-loader-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sendpilot-loader")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build binary: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testSecret = "whsec_crash_test"

// startServer runs serve with the tests' webhook secret on a loopback port chosen by the kernel and waits until
// it listens.
func startServer(t *testing.T, dataDir string, extra ...string) *e2etest.Server {
	t.Helper()
	return e2etest.Start(t, binary, dataDir, nil, append([]string{"--webhook-secret", testSecret}, extra...)...)
}

// signedRequest is a delivery of body to url signed with the tests' secret.
func signedRequest(ctx context.Context, url string, body []byte) *http.Request {
	req, _ := extract.NewSignedRequest(ctx, url, testSecret, body)
	return req
}

func eventBody(id string) []byte {
	return fmt.Appendf(nil, `{"eventId":%q,"eventType":"message.sent","timestamp":"2024-02-24T10:30:00.000Z","workspaceId":"ws_abc123xyz","data":{"leadId":"lead_%s","message":"%s"}}`,
		id, id, strings.Repeat("hello ", 20))
}

// bufferedEvents reads every sealed segment and returns how often each event ID is stored. It fails the test on
// any line that is not a complete envelope: no torn line may survive recovery.
func bufferedEvents(t *testing.T, dir string) map[string]int {
	t.Helper()
	segs, err := buffer.OpenReader(dir, buffer.Options{}).Pending()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, path := range segs {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) > 0 && raw[len(raw)-1] != '\n' {
			t.Fatalf("segment %s ends without a newline", path)
		}
		for line := range strings.Lines(string(raw)) {
			rec, st := record.Open([]byte(strings.TrimSuffix(line, "\n")))
			e, err := envelope.Decode(rec)
			if err != nil || st != record.Intact {
				t.Fatalf("segment %s: torn or invalid line %q: %v", path, line, err)
			}
			seen[e.EventID]++
		}
	}
	return seen
}

// TestCrashKeepsEveryAcknowledgedEvent kills serve with SIGKILL at random moments while many clients post, many
// times over, and checks that every event that got a 2xx is in the buffer after recovery, exactly once.
func TestCrashKeepsEveryAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes; skipped with -short")
	}
	const rounds, clients = 8, 32
	dataDir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var mu sync.Mutex
	acked := map[string]bool{}
	next := 0
	for round := range rounds {
		srv := startServer(t, dataDir, "--segment-max-bytes", "64KiB", "--schedule", "")
		ctx, cancel := context.WithCancel(context.Background())
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 10 * time.Second}
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for ctx.Err() == nil {
					mu.Lock()
					id := fmt.Sprintf("evt_r%d_%d", round, next)
					next++
					mu.Unlock()
					resp, err := client.Do(signedRequest(ctx, srv.URL, eventBody(id)))
					if err != nil {
						return // the server is gone
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 == 2 {
						mu.Lock()
						acked[id] = true
						mu.Unlock()
					}
				}
			})
		}
		time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
		srv.Kill(t)
		cancel()
		wg.Wait()
		client.CloseIdleConnections()
	}
	if len(acked) < rounds*10 {
		t.Fatalf("only %d events acknowledged in %d rounds: the load did not run", len(acked), rounds)
	}

	// Recovery happens on the next open.
	b, err := buffer.Open(filepath.Join(dataDir, "buffer"), buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	stored := bufferedEvents(t, filepath.Join(dataDir, "buffer"))
	for id := range acked {
		if stored[id] != 1 {
			t.Errorf("acknowledged event %s stored %d times", id, stored[id])
		}
	}
	for id, n := range stored {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	t.Logf("%d rounds: %d events acknowledged, %d stored (the rest were in flight at a kill)", rounds, len(acked), len(stored))
}

// TestGracefulShutdown sends SIGTERM while clients post: serve must exit 0 with the active segment sealed and
// every acknowledged event stored.
func TestGracefulShutdown(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, "--schedule", "")
	var acked []string
	for i := range 50 {
		id := fmt.Sprintf("evt_term_%d", i)
		resp, err := http.DefaultClient.Do(signedRequest(context.Background(), srv.URL, eventBody(id)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			acked = append(acked, id)
		}
	}
	srv.Stop(t)
	if t.Failed() {
		t.FailNow()
	}
	entries, _ := os.ReadDir(filepath.Join(dataDir, "buffer"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".ndjson.open") {
			t.Errorf("active segment %s left after graceful shutdown", e.Name())
		}
	}
	stored := bufferedEvents(t, filepath.Join(dataDir, "buffer"))
	if len(acked) != 50 || len(stored) != 50 {
		t.Fatalf("acked %d, stored %d, want 50 each", len(acked), len(stored))
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"serve", "--help"}} {
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err != nil {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
		if !strings.Contains(string(out), "Usage: sendpilot-loader") {
			t.Errorf("%v printed no usage:\n%s", args, out)
		}
	}
	if err := exec.Command(binary, "frobnicate").Run(); err == nil {
		t.Error("unknown command exited 0")
	}
}

func TestTransformCommand(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command(binary, "transform", "--out", out, "../../transform/testdata/all-events.ndjson", "../../transform/testdata/envelopes.ndjson")
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("transform: %v\n%s", err, got)
	}
	for _, want := range []string{"events    23", "leads     4", "experience     1", "education     3", "quarantine     5", "read 28 lines"} {
		if !strings.Contains(strings.Join(strings.Fields(string(got)), "  "), strings.Join(strings.Fields(want), "  ")) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	for _, f := range []string{"events.parquet", "leads.parquet", "experience.parquet", "education.parquet", "quarantine.ndjson"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if err := exec.Command(binary, "transform", "--out", out).Run(); err == nil {
		t.Error("transform with no input files exited 0")
	}
}
