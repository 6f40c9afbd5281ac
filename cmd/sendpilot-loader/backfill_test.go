package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sendpilot-loader/bench/corpus"
	"sendpilot-loader/load/duckdb"
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

// backfill --replace rebuilds the stored rows from the inputs: stale values, and child rows the inputs no longer
// produce, are gone and no key is stored twice; a replace killed with SIGKILL after a batch and resumed ends with
// the same tables, every column, as one that ran through; and replacing again changes nothing.
func TestBackfillReplace(t *testing.T) {
	in := backfillInputs(t)
	ref := t.TempDir()
	if out, err := backfill(t, ref, nil, in); err != nil {
		t.Fatalf("reference backfill: %v\n%s", err, out)
	}
	counts := warehouseCounts(t, ref)
	if out, err := backfill(t, ref, nil, "--replace", in); err != nil || !strings.Contains(out, "replaced (removed)") {
		t.Fatalf("reference replace: %v\n%s", err, out)
	}
	if got := warehouseCounts(t, ref); got != counts {
		t.Fatalf("replace changed the row counts: %s, want %s", got, counts)
	}
	want := warehouseContents(t, ref)

	dataDir := t.TempDir()
	if out, err := backfill(t, dataDir, nil, in); err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	// What an earlier release, or a transform bug, left behind: a wrong value in every event, and a lead and an
	// experience element the inputs do not have.
	execSQL(t, dataDir, `UPDATE events SET message = 'stale', lead_count = -1;
INSERT INTO leads (event_id, lead_index, event_type) SELECT event_id, 999, event_type FROM leads LIMIT 1;
INSERT INTO experience (event_id, lead_index, position) SELECT event_id, lead_index, 999 FROM experience LIMIT 1`)
	_, err := backfill(t, dataDir, []string{"SENDPILOT_TEST_CRASH_AFTER_STEP=loaded"}, "--replace", in)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("replace was not killed: %v", err)
	}
	out, err := backfill(t, dataDir, nil, "--replace", in)
	if err != nil || !strings.Contains(out, "before") {
		t.Fatalf("resumed replace: %v\n%s", err, out)
	}
	if got := warehouseCounts(t, dataDir); got != counts {
		t.Errorf("after a killed and resumed replace: %s, want %s", got, counts)
	}
	if got := warehouseContents(t, dataDir); got != want {
		t.Errorf("after a killed and resumed replace the tables differ from a replace that ran through:\n%s\nwant\n%s", got, want)
	}
	if out, err := backfill(t, dataDir, nil, "--replace", "--restart", in); err != nil {
		t.Fatalf("second replace: %v\n%s", err, out)
	}
	if got := warehouseContents(t, dataDir); got != want {
		t.Errorf("a second replace changed the tables:\n%s\nwant\n%s", got, want)
	}
}

// warehouseContents digests every column of every row of the four tables, in key order, one line per table.
func warehouseContents(t *testing.T, dataDir string) string {
	t.Helper()
	db, err := duckdb.Open(context.Background(), filepath.Join(dataDir, "warehouse.duckdb"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out strings.Builder
	for _, tk := range [][2]string{{"events", "event_id"}, {"leads", "event_id, lead_index"}, {"experience", "event_id, lead_index, position"}, {"education", "event_id, lead_index, position"}} {
		var n int
		var sum string
		q := fmt.Sprintf("SELECT count(*), md5(coalesce(string_agg(CAST(t AS VARCHAR), '|' ORDER BY %s), '')) FROM %s t", tk[1], tk[0])
		if err := db.QueryRow(q).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "%s: %d rows, md5 %s\n", tk[0], n, sum)
	}
	return out.String()
}

// execSQL runs statements on a data directory's DuckDB file, as an operator would.
func execSQL(t *testing.T, dataDir, statements string) {
	t.Helper()
	db, err := duckdb.Open(context.Background(), filepath.Join(dataDir, "warehouse.duckdb"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(statements); err != nil {
		t.Fatalf("%s: %v", statements, err)
	}
}
