package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sendpilot-loader/configs"
	"sendpilot-loader/extract/envelope"
	"sendpilot-loader/load"
	"sendpilot-loader/load/duckdb"
)

// segment writes a sealed buffer segment of extractor events, each with two leads with one experience and one
// education entry each.
func segment(t *testing.T, dataDir string, seq uint64, ids ...string) {
	t.Helper()
	var b []byte
	for _, id := range ids {
		body := fmt.Sprintf(`{"eventId":%q,"eventType":"lead_extractor.job.completed","timestamp":"2024-02-24T10:30:00Z","data":{"leads":[{"id":"a","experience":[{"title":"CEO"}],"education":[{"school":"MIT"}]},{"id":"b","experience":[{}],"education":[{}]}]}}`, id)
		e := envelope.Envelope{V: 1, ReceivedAt: time.Now().UTC(), Signature: envelope.SigValid, EventID: id, Payload: []byte(body)}
		b = append(envelope.AppendLine(b, &e), '\n')
	}
	dir := filepath.Join(dataDir, "buffer")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%010d.ndjson", seq)), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func runLoadCmd(t *testing.T, dataDir string, crashAfter load.Step) error {
	t.Helper()
	cmd := exec.Command(binary, "load", "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), "SENDPILOT_CONFIG=", "SENDPILOT_TEST_CRASH_AFTER_STEP="+string(crashAfter))
	out, err := cmd.CombinedOutput()
	if err != nil && crashAfter == "" {
		t.Fatalf("load: %v\n%s", err, out)
	}
	return err
}

// warehouseCounts returns "events=N leads=N experience=N education=N" and fails on any duplicate key.
func warehouseCounts(t *testing.T, dataDir string) string {
	t.Helper()
	db, err := duckdb.Open(context.Background(), filepath.Join(dataDir, "warehouse.duckdb"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var parts []string
	for table, key := range map[string]string{"events": "event_id", "leads": "event_id, lead_index", "experience": "event_id, lead_index, position", "education": "event_id, lead_index, position"} {
		var n, distinct int
		q := fmt.Sprintf("SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT %s FROM %s)) FROM %s", key, table, table)
		if err := db.QueryRow(q).Scan(&n, &distinct); err != nil {
			t.Fatal(err)
		}
		if n != distinct {
			t.Errorf("%s: %d rows for %d keys", table, n, distinct)
		}
		parts = append(parts, fmt.Sprintf("%s=%d", table, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// TestLoadSurvivesSIGKILLAtEveryStep kills the load command with SIGKILL right after each step of a batch is
// recorded, runs it again, then loads a second batch that repeats an event: every event is stored exactly
// once, with all its children, and the buffer ends empty.
func TestLoadSurvivesSIGKILLAtEveryStep(t *testing.T) {
	for _, step := range []load.Step{load.StepPlanned, load.StepTransformed, load.StepLoaded, load.StepArchived} {
		t.Run(string(step), func(t *testing.T) {
			dataDir := t.TempDir()
			segment(t, dataDir, 1, "evt_1", "evt_2", "evt_1")
			err := runLoadCmd(t, dataDir, step)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("load was not killed after %s: %v", step, err)
			}
			runLoadCmd(t, dataDir, "")
			segment(t, dataDir, 2, "evt_2", "evt_3")
			runLoadCmd(t, dataDir, "")
			if got, want := warehouseCounts(t, dataDir), "education=6 events=3 experience=6 leads=6"; got != want {
				t.Fatalf("after SIGKILL at %s: %s, want %s", step, got, want)
			}
			if left, _ := filepath.Glob(filepath.Join(dataDir, "buffer", "*.ndjson*")); len(left) != 0 {
				t.Errorf("segments left in the buffer: %v", left)
			}
		})
	}
}

func TestLoadDryRunAndStatus(t *testing.T) {
	dataDir := t.TempDir()
	segment(t, dataDir, 1, "evt_1")
	out, err := exec.Command(binary, "load", "--dry-run", "--data-dir", dataDir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "would load 1 segments") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	out, err = exec.Command(binary, "status", "--data-dir", dataDir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "pending segments:  1") || !strings.Contains(string(out), "last batch:        none yet") {
		t.Fatalf("status before load: %v\n%s", err, out)
	}
	runLoadCmd(t, dataDir, "")
	out, _ = exec.Command(binary, "status", "--data-dir", dataDir).CombinedOutput()
	if !strings.Contains(string(out), "pending segments:  0") || !strings.Contains(string(out), "archived") {
		t.Fatalf("status after load:\n%s", out)
	}
}

// serve's own loads transform with a worker fewer than the cores, so the receiver keeps one; the load command
// and backfill, which run alone, take them all.
func TestScheduledLoadsLeaveACore(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	cfg := configs.Defaults()
	if got := scheduledLoaderOptions(cfg, slog.New(slog.DiscardHandler), nil, nil, os.Getenv).Transform.Workers; got != 3 {
		t.Errorf("serve's transform workers on 4 cores = %d, want 3", got)
	}
	if got := loaderOptions(cfg, slog.New(slog.DiscardHandler), nil, nil, os.Getenv).Transform.Workers; got != 0 {
		t.Errorf("the load command's transform workers = %d, want 0 (the transform's default, every core)", got)
	}
}
