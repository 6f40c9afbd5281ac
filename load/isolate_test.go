package load_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sendpilot-loader/load"
	"sendpilot-loader/load/duckdb"
	"sendpilot-loader/transform"
)

// refusing stands for a warehouse that refuses values: real DuckDB underneath, but any batch whose events
// include one of the poison IDs is refused whole, with ErrRejected, as DuckDB refuses a Parquet file holding
// a string it cannot store ("Invalid Input Error: Invalid string encoding found in Parquet file") and
// BigQuery a load job with a bad row (reason "invalid", https://cloud.google.com/bigquery/docs/error-messages).
type refusing struct {
	load.Warehouse
	poison []string
	loads  *atomic.Int64
	// crashAfter, if positive, panics on that many-th load, as a kill in the middle of isolation would stop it.
	crashAfter int64
}

func (r refusing) Load(ctx context.Context, b load.Batch) (load.LoadResult, error) {
	n := r.loads.Add(1)
	if r.crashAfter > 0 && n == r.crashAfter {
		panic("crash in the middle of isolation")
	}
	rows, err := transform.ReadParquetJSON(b.Files[transform.TableEvents])
	if err != nil && b.Rows[transform.TableEvents] > 0 {
		return load.LoadResult{}, err
	}
	for _, p := range r.poison {
		if bytes.Contains(rows, []byte(`"event_id":"`+p+`"`)) {
			return load.LoadResult{}, fmt.Errorf("insert events: %w: Invalid Input Error: Invalid string encoding found in Parquet file (event %s)", load.ErrRejected, p)
		}
	}
	return r.Warehouse.Load(ctx, b)
}

func (e *env) loaderWith(t *testing.T, wh func() load.Warehouse, reg prometheus.Registerer) *load.Loader {
	t.Helper()
	l, err := load.New(load.Options{
		DataDir:    e.dataDir,
		Buffer:     e.buffer(),
		Warehouse:  func() (load.Warehouse, error) { return wh(), nil },
		Attempts:   2,
		Backoff:    time.Millisecond,
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// messageEvent is a buffer envelope line for a small outreach event.
func messageEvent(id string) string {
	return fmt.Sprintf(`{"v":1,"received_at":"2026-01-01T00:00:00Z","signature":"valid","event_id":%q,"payload":{"eventId":%q,"eventType":"message.sent","timestamp":"2024-02-24T10:30:00Z","data":{"message":"hi"}}}`, id, id)
}

// One poison event in a batch of 1,000 good ones: the good ones load in the same run, the poison one is kept
// in quarantine with the warehouse's error, and the batch finishes.
func TestOnePoisonEventIsIsolatedFromItsBatch(t *testing.T) {
	e := newEnv(t)
	var lines []string
	for i := range 1000 {
		lines = append(lines, messageEvent(fmt.Sprintf("evt_good_%04d", i)))
		if i == 617 {
			lines = append(lines, messageEvent("evt_poison"))
		}
	}
	writeSegment(t, e.dataDir, 1, lines[:500]...)
	writeSegment(t, e.dataDir, 2, lines[500:]...)
	var loads atomic.Int64
	reg := prometheus.NewRegistry()
	l := e.loaderWith(t, func() load.Warehouse {
		return refusing{Warehouse: duckdb.New(e.dbPath), poison: []string{"evt_poison"}, loads: &loads}
	}, reg)
	rep, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Batches[0]
	if m.Step != load.StepArchived || m.Refused != 1 || m.Inserted["events"] != 1000 {
		t.Fatalf("batch %+v", m)
	}
	if got, want := e.counts(t), "events=1000 leads=0 experience=0 education=0"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
	q, err := os.ReadFile(m.RefusedFile)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(q, []byte("\n")) != 1 || !bytes.Contains(q, []byte("evt_poison")) || !bytes.Contains(q, []byte("Invalid string encoding")) ||
		!bytes.Contains(q, []byte(`"source_line":119`)) || !bytes.Contains(q, []byte("0000000002.ndjson")) {
		t.Fatalf("refused file does not hold the poison event with its error and location: %s", q)
	}
	if n := loads.Load(); n > 40 {
		t.Errorf("%d loads to isolate one event among 1,001", n)
	}
	if got := metricValue(t, reg, "sendpilot_load_refused_events_total"); got != 1 {
		t.Errorf("refused metric = %v", got)
	}
	if p := e.pending(t); len(p) != 0 {
		t.Errorf("segments still pending: %v", p)
	}
	st, _ := load.ReadStatus(e.dataDir)
	if st.Refused != 1 || len(st.RefusedFiles) != 1 {
		t.Errorf("status: %+v", st)
	}

	// The recovery path: once the warehouse takes the value, backfilling the quarantine file loads the event,
	// at its original lineage.
	e.replayRefused(t, []string{m.RefusedFile}, "events=1001 leads=0 experience=0 education=0", filepath.Join(e.dataDir, "buffer", "0000000002.ndjson"), 119)
}

// replayRefused backfills refused files into a warehouse that takes every value, as after a fix, and checks the
// counts then and that evt_poison is stored at its original file and line.
func (e *env) replayRefused(t *testing.T, files []string, wantCounts, wantFile string, wantLine int) {
	t.Helper()
	fixed := e.loaderWith(t, func() load.Warehouse { return duckdb.New(e.dbPath) }, nil)
	if _, err := fixed.Backfill(context.Background(), load.BackfillOptions{Files: files}); err != nil {
		t.Fatal(err)
	}
	if got := e.counts(t); got != wantCounts {
		t.Fatalf("after replaying the refused file: %s, want %s", got, wantCounts)
	}
	var file string
	var line int
	db, _ := duckdb.Open(context.Background(), e.dbPath, time.Second)
	defer db.Close()
	if err := db.QueryRow(`SELECT source_file, source_line FROM events WHERE event_id = 'evt_poison'`).Scan(&file, &line); err != nil || !strings.HasSuffix(file, wantFile) || line != wantLine {
		t.Errorf("replayed event's lineage = %s:%d, %v; want %s:%d", file, line, err, wantFile, wantLine)
	}
}

// A crash in the middle of isolating resumes to the same end state, with no row twice.
func TestIsolationResumesAfterACrash(t *testing.T) {
	e := newEnv(t)
	var lines []string
	for i := range 64 {
		lines = append(lines, messageEvent(fmt.Sprintf("evt_%02d", i)))
	}
	lines[5], lines[40] = messageEvent("evt_poison_a"), messageEvent("evt_poison_b")
	writeSegment(t, e.dataDir, 1, lines...)
	var loads atomic.Int64
	poison := []string{"evt_poison_a", "evt_poison_b"}
	crashing := e.loaderWith(t, func() load.Warehouse {
		return refusing{Warehouse: duckdb.New(e.dbPath), poison: poison, loads: &loads, crashAfter: 6}
	}, nil)
	func() {
		defer func() { recover() }()
		crashing.Run(context.Background())
		t.Fatal("the load did not crash")
	}()
	rep, err := e.loaderWith(t, func() load.Warehouse {
		return refusing{Warehouse: duckdb.New(e.dbPath), poison: poison, loads: &loads}
	}, nil).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m := rep.Batches[0]; m.Step != load.StepArchived || m.Refused != 2 {
		t.Fatalf("batch after resume: %+v", m)
	}
	if got, want := e.counts(t), "events=62 leads=0 experience=0 education=0"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}

// systemic stands for a warehouse that cannot load until an operator acts (a schema difference, a missing
// permission): its Ensure fails with ErrSystemic while broken is set.
type systemic struct {
	load.Warehouse
	broken *atomic.Bool
}

func (s systemic) Ensure(ctx context.Context) error {
	if s.broken.Load() {
		return fmt.Errorf("%w: table events has column campaign_id of type BIGINT, the loader writes VARCHAR; see docs/upgrading.md", load.ErrSystemic)
	}
	return s.Warehouse.Ensure(ctx)
}

// A systemic error pauses loads: nothing is moved aside, the pause shows in status, readiness and a metric,
// and loads resume by themselves once it is fixed.
func TestSystemicErrorPausesLoadsAndMovesNothing(t *testing.T) {
	e := newEnv(t)
	writeSegment(t, e.dataDir, 1, event("evt_1"))
	var broken atomic.Bool
	broken.Store(true)
	reg := prometheus.NewRegistry()
	l := e.loaderWith(t, func() load.Warehouse { return systemic{duckdb.New(e.dbPath), &broken} }, reg)
	for run := range 3 {
		if _, err := l.Run(context.Background()); !errors.Is(err, load.ErrSystemic) {
			t.Fatalf("run %d = %v, want a systemic error", run, err)
		}
	}
	if got := e.pending(t); len(got) != 1 {
		t.Fatalf("pending while paused: %v", got)
	}
	if got := files(t, filepath.Join(e.dataDir, "rejected")); len(got) != 0 {
		t.Fatalf("moved aside while paused: %v", got)
	}
	if err := l.Ready(); err == nil || !strings.Contains(err.Error(), "campaign_id") {
		t.Fatalf("Ready while paused = %v", err)
	}
	if got := metricValue(t, reg, "sendpilot_load_paused"); got != 1 {
		t.Fatalf("paused gauge = %v", got)
	}
	st, _ := load.ReadStatus(e.dataDir)
	if st.Paused == nil || !strings.Contains(st.Paused.Error, "docs/upgrading.md") {
		t.Fatalf("status while paused: %+v", st.Paused)
	}
	// A restarted process sees the pause too.
	if again := e.loaderWith(t, func() load.Warehouse { return duckdb.New(e.dbPath) }, nil); again.Ready() == nil {
		t.Fatal("a new loader forgot the pause")
	}

	broken.Store(false)
	if _, err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := e.counts(t), "events=1 leads=2 experience=2 education=2"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
	if l.Ready() != nil || metricValue(t, reg, "sendpilot_load_paused") != 0 {
		t.Fatal("still paused after a successful load")
	}
	if st, _ := load.ReadStatus(e.dataDir); st.Paused != nil {
		t.Fatalf("status still paused: %+v", st.Paused)
	}
}

// A paused loader checks the warehouse on each run even with nothing to load, so its pause (and a failing
// /readyz) ends once the warehouse is fixed, even when another process loaded the pending batch.
func TestIdlePauseEndsWhenTheWarehouseIsFixed(t *testing.T) {
	e := newEnv(t)
	writeSegment(t, e.dataDir, 1, event("evt_1"))
	var broken atomic.Bool
	broken.Store(true)
	l := e.loaderWith(t, func() load.Warehouse { return systemic{duckdb.New(e.dbPath), &broken} }, nil)
	if _, err := l.Run(context.Background()); !errors.Is(err, load.ErrSystemic) {
		t.Fatalf("run = %v", err)
	}
	broken.Store(false)
	// `sendpilot-loader load`, run by hand after the fix, loads the batch.
	if _, err := e.loader(t, nil).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l.Ready() == nil {
		t.Fatal("the paused loader cleared its pause without looking")
	}
	if _, err := l.Run(context.Background()); err != nil || l.Ready() != nil {
		t.Fatalf("idle run after the fix = %v, ready %v", err, l.Ready())
	}
}

// A segment the transform cannot read is set aside after a few runs, so the batches behind it load.
func TestUnreadableBatchIsSetAsideAndLaterBatchesLoad(t *testing.T) {
	e := newEnv(t)
	writeSegment(t, e.dataDir, 1, event("evt_1"))
	l := e.loader(t, nil)
	// Make the segment unreadable: a directory under its name opens, but every read fails (as root, a file
	// without read permission would still be read).
	seg := filepath.Join(e.dataDir, "buffer", "0000000001.ndjson")
	os.Remove(seg)
	if err := os.Mkdir(seg, 0o755); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 3 {
		_, lastErr = l.Run(context.Background())
	}
	writeSegment(t, e.dataDir, 2, event("evt_2"))
	if _, err := l.Run(context.Background()); err != nil {
		t.Fatalf("a later batch did not load behind the unreadable one: %v (before: %v)", err, lastErr)
	}
	if got, want := e.counts(t), "events=1 leads=2 experience=2 education=2"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
	if got := files(t, filepath.Join(e.dataDir, "rejected")); len(got) != 1 {
		t.Fatalf("rejected/: %v", got)
	}
}

// A batch whose events lie outside any warehouse's time range still gets a manifest (it used to fail with
// "Time.MarshalJSON: year outside of range" on every run, and no later batch was ever planned).
func TestOccurredRangeIsClamped(t *testing.T) {
	lo, hi, _, _ := load.OccurredRange(transform.Counts{Occurred: 2, MinOccurred: -1 << 62, MaxOccurred: 1 << 62})
	if _, err := json.Marshal(struct{ Lo, Hi time.Time }{lo, hi}); err != nil {
		t.Fatalf("range %v..%v cannot be recorded: %v", lo, hi, err)
	}
	if lo.Year() != 1 || hi.Year() != 9999 {
		t.Fatalf("range %v..%v", lo, hi)
	}
}

// metricValue sums the samples of a registered metric.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		v := 0.0
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return v
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// A backfill batch holding an event the warehouse refuses loads the rest of the batch, keeps the refused event
// in quarantine at its original file and line, leaves the filtered-out events out of the partial loads too,
// and the refused file replays once the warehouse takes the value. Inputs: plain NDJSON (cut into parts) and
// gzip, so lines are read back from both.
func TestBackfillIsolatesRefusedEvents(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	var plain, zipped strings.Builder
	for i := range 400 {
		id := fmt.Sprintf("evt_bf_%04d", i)
		if i == 250 {
			id = "evt_poison"
		}
		typ := "message.sent"
		if i%10 == 3 {
			typ = "lead.updated" // filtered out
		}
		line := fmt.Sprintf(`{"eventId":%q,"eventType":%q,"timestamp":"2024-02-24T10:30:00Z","data":{"message":"hi"}}`, id, typ) + "\n"
		if i < 300 {
			plain.WriteString(line)
		} else {
			zipped.WriteString(line)
		}
	}
	plainPath := filepath.Join(dir, "export.ndjson")
	zipPath := filepath.Join(dir, "export2.ndjson.gz")
	if err := os.WriteFile(plainPath, []byte(plain.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	writeGzip(t, zipPath, zipped.String())
	var loads atomic.Int64
	l := e.loaderWith(t, func() load.Warehouse {
		return refusing{Warehouse: duckdb.New(e.dbPath), poison: []string{"evt_poison"}, loads: &loads}
	}, nil)
	keep := func(canonical, raw string, occurred int64, ok bool) bool { return canonical == "message.sent" }
	rep, err := l.Backfill(context.Background(), load.BackfillOptions{Files: []string{plainPath, zipPath}, Keep: keep, Filter: "message.sent", PartBytes: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Refused != 1 || len(rep.RefusedFiles) != 1 {
		t.Fatalf("report %+v, want one refused event in one file", rep)
	}
	if got, want := e.counts(t), "events=359 leads=0 experience=0 education=0"; got != want {
		t.Fatalf("%s, want %s (360 kept by the filter, less the refused one)", got, want)
	}
	q, err := os.ReadFile(rep.RefusedFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(q, []byte("\n")) != 1 || !bytes.Contains(q, []byte("evt_poison")) || !bytes.Contains(q, []byte("Invalid string encoding")) ||
		!bytes.Contains(q, []byte(`"source_line":251`)) || !bytes.Contains(q, []byte("export.ndjson")) {
		t.Fatalf("refused file does not hold the poison event with its error and location: %s", q)
	}

	e.replayRefused(t, rep.RefusedFiles, "events=360 leads=0 experience=0 education=0", plainPath, 251)

	// Rebuilding the same history with --replace isolates the refused event again, and the report counts the
	// stored rows its partial loads replaced.
	rep, err = l.Backfill(context.Background(), load.BackfillOptions{Files: []string{plainPath, zipPath}, Keep: keep, Filter: "message.sent", PartBytes: 8 << 10, Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Refused != 1 || rep.Replaced["events"] != 359 {
		t.Fatalf("replace report refused %d, replaced %v; want one refused and 359 events replaced", rep.Refused, rep.Replaced)
	}
}

func writeGzip(t *testing.T, path, text string) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(text))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// uncounting stands for a warehouse that cannot tell how many rows a load inserted (LoadResult's -1), as
// BigQuery cannot for a MERGE whose job statistics leave the count out.
type uncounting struct{ load.Warehouse }

func (u uncounting) Load(ctx context.Context, b load.Batch) (load.LoadResult, error) {
	res, err := u.Warehouse.Load(ctx, b)
	if err == nil && res.Inserted[transform.TableEvents] > 0 {
		res.Inserted[transform.TableEvents] = -1
	}
	return res, err
}

// An isolation's partial loads add up as loads do: once one of them cannot tell what it inserted, neither
// can the batch (-1), rather than a count one too low.
func TestIsolationKeepsUnknownCountsUnknown(t *testing.T) {
	e := newEnv(t)
	var lines []string
	for i := range 20 {
		lines = append(lines, messageEvent(fmt.Sprintf("evt_u_%02d", i)))
	}
	lines = append(lines, messageEvent("evt_poison"))
	writeSegment(t, e.dataDir, 1, lines...)
	var loads atomic.Int64
	l := e.loaderWith(t, func() load.Warehouse {
		return refusing{Warehouse: uncounting{duckdb.New(e.dbPath)}, poison: []string{"evt_poison"}, loads: &loads}
	}, nil)
	rep, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m := rep.Batches[0]; m.Refused != 1 || m.Inserted["events"] != -1 {
		t.Fatalf("batch %+v, want one refused event and events inserted -1 (unknown)", m)
	}
}
