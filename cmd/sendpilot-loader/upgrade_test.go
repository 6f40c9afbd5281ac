package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
