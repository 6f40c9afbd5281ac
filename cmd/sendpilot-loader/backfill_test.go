package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"sendpilot-loader/bench/corpus"
)

// backfillInputs writes a mixed set of inputs: a bare NDJSON corpus, the same corpus gzip'd (all duplicates), a
// JSON array file, buffer envelopes with a bad line, and returns the directory.
func backfillInputs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var bare, env bytes.Buffer
	g, ge := corpus.New(3, false), corpus.New(4, true)
	for range 300 {
		line, _ := g.Next(nil)
		bare.Write(append(line, '\n'))
	}
	for range 50 {
		line, _ := ge.Next(nil)
		env.Write(append(line, '\n'))
	}
	env.WriteString("this line is not JSON\n")
	os.WriteFile(filepath.Join(dir, "bare.ndjson"), bare.Bytes(), 0o644)
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(bare.Bytes())
	zw.Close()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "again.ndjson.gz"), zb.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "0000000001.ndjson"), env.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "export.json"), []byte(`[{"eventId":"arr_1","eventType":"reply.received","timestamp":"2024-03-01T00:00:00Z","data":{"reply":"yes"}},{"eventId":"arr_2","eventType":"message.received","timestamp":"2023-01-01T00:00:00Z","data":{}}]`), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an input"), 0o644)
	return dir
}

func backfill(t *testing.T, dataDir string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"backfill", "--data-dir", dataDir, "--part-bytes", "64KiB"}, args...)...)
	cmd.Env = append(append(os.Environ(), "SENDPILOT_CONFIG=", "SENDPILOT_LOAD_MAX_BATCH_BYTES=256KiB"), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A backfill killed with SIGKILL after loading a batch, and run again, ends with the same tables as one that
// ran through; running it again from the start (--restart) adds nothing.
func TestBackfillResumesAndIsIdempotent(t *testing.T) {
	in := backfillInputs(t)
	ref := t.TempDir()
	if out, err := backfill(t, ref, nil, in); err != nil {
		t.Fatalf("reference backfill: %v\n%s", err, out)
	}
	want := warehouseCounts(t, ref)

	dataDir := t.TempDir()
	_, err := backfill(t, dataDir, []string{"SENDPILOT_TEST_CRASH_AFTER_STEP=loaded"}, in)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("backfill was not killed: %v", err)
	}
	out, err := backfill(t, dataDir, nil, in)
	if err != nil || !strings.Contains(out, "before") {
		t.Fatalf("resumed backfill: %v\n%s", err, out)
	}
	if got := warehouseCounts(t, dataDir); got != want {
		t.Fatalf("after a kill and a resume: %s, want %s", got, want)
	}
	// The resumed run named its batches as the killed one did (so BigQuery would find that run's jobs); a
	// restart names them afresh (so it never takes an earlier run's jobs for its own).
	if n := backfillGenerations(t, dataDir); n != 1 {
		t.Errorf("killed and resumed run: %d batch generations, want 1", n)
	}
	if out, err := backfill(t, dataDir, nil, "--restart", in); err != nil {
		t.Fatalf("restarted backfill: %v\n%s", err, out)
	}
	if got := warehouseCounts(t, dataDir); got != want {
		t.Fatalf("after a second full backfill: %s, want %s", got, want)
	}
	if n := backfillGenerations(t, dataDir); n != 2 {
		t.Errorf("after --restart: %d batch generations, want 2", n)
	}
	if strings.Contains(want, "events=0") {
		t.Fatalf("nothing was loaded: %s", want)
	}
}

func TestBackfillFiltersAndBadLines(t *testing.T) {
	in := backfillInputs(t)
	dataDir := t.TempDir()
	out, err := backfill(t, dataDir, nil, "--event-type", "reply.received", "--since", "2024-01-01", filepath.Join(in, "*.json"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := warehouseCounts(t, dataDir); !strings.Contains(got, "events=1 ") {
		t.Fatalf("filtered backfill: %s\n%s", got, out)
	}
	out, err = backfill(t, t.TempDir(), nil, "--max-errors", "0", filepath.Join(in, "sub"))
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 4 || !strings.Contains(out, "1 bad lines") {
		t.Fatalf("bad line over --max-errors 0: %v\n%s", err, out)
	}
	if out, err := backfill(t, t.TempDir(), nil, "--dry-run", in); err != nil || !strings.Contains(out, "(dry run)") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
}

// backfillGenerations counts the distinct run-and-generation parts of the backfill batch IDs the warehouse
// recorded.
func backfillGenerations(t *testing.T, dataDir string) int {
	t.Helper()
	code, out, stderr := runIn(t, "sql", "SELECT count(DISTINCT split_part(batch_id, '-', 2)) AS n FROM _sendpilot_batches WHERE batch_id LIKE 'bf-%'",
		"--data-dir", dataDir, "--format", "csv")
	var n int
	if _, err := fmt.Sscanf(out, "n\n%d", &n); code != 0 || err != nil {
		t.Fatalf("count generations: exit %d, %v: %s%s", code, err, out, stderr)
	}
	return n
}
