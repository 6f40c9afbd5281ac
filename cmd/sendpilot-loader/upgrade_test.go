package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sendpilot-loader/cmd/sendpilot-loader/e2etest"
)

// A warehouse whose schema differs in a way the loader cannot migrate (here a column's type changed by hand)
// makes load fail with the documented message and lose nothing: the segment stays in buffer/ and nothing goes
// to rejected/. Once the operator runs the statement the message gives, the next load stores the batch.
func TestSchemaDifferencePausesLoadsAndLosesNothing(t *testing.T) {
	dataDir := t.TempDir()
	segment(t, dataDir, 1, "evt_1")
	runLoadCmd(t, dataDir, "")
	execSQL(t, dataDir, "ALTER TABLE events ALTER COLUMN sequence_step TYPE VARCHAR")
	segment(t, dataDir, 2, "evt_2")

	cmd := exec.Command(binary, "load", "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), "SENDPILOT_CONFIG=", "SENDPILOT_LOAD_ATTEMPTS=1")
	out, err := cmd.CombinedOutput()
	const fix = "ALTER TABLE events DROP COLUMN sequence_step"
	for _, want := range []string{"differs from this release's in a way that cannot be migrated safely",
		"events.sequence_step is VARCHAR in the warehouse but this release writes BIGINT", fix} {
		if !strings.Contains(string(out), want) {
			t.Errorf("load output lacks %q", want)
		}
	}
	if err == nil {
		t.Errorf("load over a schema difference exited 0:\n%s", out)
	}
	if entries, _ := filepath.Glob(filepath.Join(dataDir, "buffer", "*.ndjson*")); len(entries) != 1 {
		t.Errorf("buffer after a paused load: %v, want the one pending segment", entries)
	}
	status := exec.Command(binary, "status", "--data-dir", dataDir)
	status.Env = append(os.Environ(), "SENDPILOT_CONFIG=")
	if st, _ := status.CombinedOutput(); !strings.Contains(string(st), "LOADS PAUSED") || !strings.Contains(string(st), "sequence_step") {
		t.Errorf("status while paused does not say so:\n%s", st)
	}
	if entries, _ := os.ReadDir(filepath.Join(dataDir, "rejected")); len(entries) != 0 {
		t.Errorf("rejected/ after a paused load: %v, want nothing", entries)
	}

	execSQL(t, dataDir, fix)
	runLoadCmd(t, dataDir, "")
	if got, want := warehouseCounts(t, dataDir), "education=4 events=2 experience=4 leads=4"; got != want {
		t.Fatalf("after the fix: %s, want %s", got, want)
	}
	if entries, _ := filepath.Glob(filepath.Join(dataDir, "buffer", "*.ndjson*")); len(entries) != 0 {
		t.Errorf("buffer after the fix: %v, want empty", entries)
	}
	status = exec.Command(binary, "status", "--data-dir", dataDir)
	status.Env = append(os.Environ(), "SENDPILOT_CONFIG=")
	if st, _ := status.CombinedOutput(); strings.Contains(string(st), "LOADS PAUSED") {
		t.Errorf("status still paused after the fix:\n%s", st)
	}
}

// While scheduled loads are paused by a schema difference, serve's /readyz fails with the reason and
// sendpilot_load_paused is 1; once the difference is fixed, the next scheduled run loads and both clear, with
// no restart.
func TestPausedLoadsFailReadinessUntilFixed(t *testing.T) {
	dataDir := t.TempDir()
	segment(t, dataDir, 1, "evt_1")
	runLoadCmd(t, dataDir, "")
	execSQL(t, dataDir, "ALTER TABLE events ALTER COLUMN sequence_step TYPE VARCHAR")
	segment(t, dataDir, 2, "evt_2")
	srv := e2etest.Start(t, binary, dataDir, []string{"SENDPILOT_LOAD_ATTEMPTS=1"}, "--webhook-secret", testSecret, "--schedule", "@every 1s")
	base := strings.TrimSuffix(srv.URL, "/webhooks/sendpilot")
	// waitFor polls serve (another process: there is nothing to hand-shake with) until cond holds, for 30 s.
	waitFor := func(what string, cond func(readyz int, body, metrics string) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := get(t, base+"/readyz")
			_, metrics := get(t, base+"/metrics")
			if cond(code, body, metrics) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz %d %q\n%s", what, code, body, srv.Log())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("paused", func(code int, body, metrics string) bool {
		return code == http.StatusServiceUnavailable && strings.Contains(body, "loads paused") && strings.Contains(body, "sequence_step") &&
			strings.Contains(metrics, "\nsendpilot_load_paused 1\n")
	})
	execSQL(t, dataDir, "ALTER TABLE events DROP COLUMN sequence_step")
	waitFor("resumed", func(code int, body, metrics string) bool {
		return code == http.StatusOK && strings.Contains(metrics, "\nsendpilot_load_paused 0\n")
	})
	srv.Stop(t)
	if got, want := warehouseCounts(t, dataDir), "education=4 events=2 experience=4 leads=4"; got != want {
		t.Fatalf("after the fix: %s, want %s", got, want)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
