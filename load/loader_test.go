package load_test

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sendpilot-loader/extract/buffer"
	"sendpilot-loader/extract/envelope"
	"sendpilot-loader/load"
	"sendpilot-loader/load/duckdb"
)

// event returns a buffer envelope line for an extractor event with two leads, each with one experience and
// one education entry.
func event(id string) string {
	body := fmt.Sprintf(`{"eventId":%q,"eventType":"lead_extractor.job.completed","timestamp":"2024-02-24T10:30:00Z","data":{"campaign_id":"c1","leads":[{"id":"l1","experience":[{"title":"CEO"}],"education":[{"school":"MIT"}]},{"id":"l2","experience":[{"title":"CTO"}],"education":[{"school":"ETH"}]}]}}`, id)
	e := envelope.Envelope{V: 1, ReceivedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Signature: envelope.SigValid, EventID: id, Payload: []byte(body)}
	return string(envelope.AppendLine(nil, &e))
}

// writeSegment adds a sealed segment holding lines to the data dir's buffer.
func writeSegment(t *testing.T, dataDir string, seq uint64, lines ...string) {
	t.Helper()
	dir := filepath.Join(dataDir, "buffer")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%010d.ndjson", seq)), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// flaky wraps a warehouse and fails its first n loads with err.
type flaky struct {
	load.Warehouse
	fails *atomic.Int64
	err   error
}

func (f flaky) Load(ctx context.Context, b load.Batch) (load.LoadResult, error) {
	if f.fails.Add(-1) >= 0 {
		return load.LoadResult{}, f.err
	}
	return f.Warehouse.Load(ctx, b)
}

type env struct {
	dataDir, dbPath string
	fails           atomic.Int64
	failErr         error
}

func newEnv(t *testing.T) *env {
	dir := t.TempDir()
	return &env{dataDir: dir, dbPath: filepath.Join(dir, "warehouse.duckdb"), failErr: errors.New("503 backend unavailable")}
}

// buffer is the data dir's buffer as serve lays it out.
func (e *env) buffer() *buffer.Reader {
	return buffer.OpenReader(filepath.Join(e.dataDir, "buffer"), buffer.Options{ArchiveDir: filepath.Join(e.dataDir, "archive")})
}

// pending names the sealed segments still in the buffer.
func (e *env) pending(t *testing.T) []string {
	t.Helper()
	paths, err := e.buffer().Pending()
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range paths {
		paths[i] = filepath.Base(p)
	}
	return paths
}

func (e *env) loader(t *testing.T, after func(string, load.Step)) *load.Loader {
	t.Helper()
	l, err := load.New(load.Options{
		DataDir:   e.dataDir,
		Buffer:    e.buffer(),
		Warehouse: func() (load.Warehouse, error) { return flaky{duckdb.New(e.dbPath), &e.fails, e.failErr}, nil },
		Attempts:  2,
		Backoff:   time.Millisecond,
		AfterStep: after,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (e *env) counts(t *testing.T) string {
	t.Helper()
	db, err := duckdb.Open(context.Background(), e.dbPath, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []string
	for _, table := range []string{"events", "leads", "experience", "education"} {
		var n, distinct int
		key := map[string]string{"events": "event_id", "leads": "event_id || '/' || lead_index"}[table]
		if key == "" {
			key = "event_id || '/' || lead_index || '/' || position"
		}
		if err := db.QueryRow(fmt.Sprintf("SELECT count(*), count(DISTINCT %s) FROM %s", key, table)).Scan(&n, &distinct); err != nil {
			t.Fatal(err)
		}
		if n != distinct {
			t.Errorf("%s has %d rows for %d keys", table, n, distinct)
		}
		out = append(out, fmt.Sprintf("%s=%d", table, n))
	}
	return strings.Join(out, " ")
}

func files(t *testing.T, dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestRunLoadsArchivesAndDedups(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// evt_1 three times: twice in one segment, once in a later batch.
	writeSegment(t, e.dataDir, 1, event("evt_1"), event("evt_2"), event("evt_1"))
	writeSegment(t, e.dataDir, 2, event("evt_3"))
	l := e.loader(t, nil)
	rep, err := l.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Batches) != 1 || rep.Batches[0].Step != load.StepArchived || len(rep.Batches[0].Segments) != 2 {
		t.Fatalf("report: %+v", rep.Batches)
	}
	writeSegment(t, e.dataDir, 3, event("evt_1"), "not json")
	if _, err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := e.counts(t), "events=3 leads=6 experience=6 education=6"; got != want {
		t.Fatalf("warehouse: %s, want %s", got, want)
	}
	if got := e.pending(t); len(got) != 0 {
		t.Errorf("buffer not emptied: %v", got)
	}
	if got := files(t, filepath.Join(e.dataDir, "archive")); strings.Join(got, ",") != "0000000001.ndjson.gz,0000000002.ndjson.gz,0000000003.ndjson.gz" {
		t.Errorf("archive: %v", got)
	}
	if got := files(t, filepath.Join(e.dataDir, "quarantine")); len(got) != 1 {
		t.Errorf("quarantine: %v", got)
	}
	rep, err = l.Run(ctx)
	if err != nil || len(rep.Batches) != 0 {
		t.Fatalf("idle run: %+v, %v", rep, err)
	}
}

// A crash right after any step leaves a batch that the next run finishes, with every event stored once.
// (The binary's tests do the same with SIGKILL; here a panic stops the run at the same points.)
func TestRunResumesAfterEveryStep(t *testing.T) {
	for _, step := range []load.Step{load.StepPlanned, load.StepTransformed, load.StepLoaded, load.StepArchived} {
		t.Run(string(step), func(t *testing.T) {
			e := newEnv(t)
			writeSegment(t, e.dataDir, 1, event("evt_1"), event("evt_2"))
			crash := e.loader(t, func(_ string, s load.Step) {
				if s == step {
					panic("crash")
				}
			})
			func() {
				defer func() { recover() }()
				crash.Run(context.Background())
			}()
			writeSegment(t, e.dataDir, 2, event("evt_2"), event("evt_3"))
			l := e.loader(t, nil)
			for range 2 {
				if _, err := l.Run(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := e.counts(t), "events=3 leads=6 experience=6 education=6"; got != want {
				t.Fatalf("after a crash at %s: %s, want %s", step, got, want)
			}
			if got := e.pending(t); len(got) != 0 {
				t.Errorf("buffer not emptied: %v", got)
			}
		})
	}
}

// The warehouse fails for several runs, then recovers: nothing is lost or doubled meanwhile.
func TestWarehouseOutage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.fails.Store(5) // two attempts per run: runs 1 and 2 fail, run 3 fails once then succeeds
	l := e.loader(t, nil)
	for run := 1; run <= 3; run++ {
		writeSegment(t, e.dataDir, uint64(run), event(fmt.Sprintf("evt_%d", run)), event("evt_dup"))
		_, err := l.Run(ctx)
		if run < 3 && err == nil {
			t.Fatalf("run %d succeeded during the outage", run)
		}
		if run < 3 && len(e.pending(t)) != run {
			t.Fatalf("run %d: segments left the buffer during the outage", run)
		}
	}
	for range 3 {
		if _, err := l.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := e.counts(t), "events=4 leads=8 experience=8 education=8"; got != want {
		t.Fatalf("after the outage: %s, want %s", got, want)
	}
}

// A batch the warehouse refuses is never moved aside whole: isolation loads it in parts (here the refusal
// does not repeat, so the first part is the whole batch), and later batches go on.
func TestRefusedBatchIsNotMovedAside(t *testing.T) {
	e := newEnv(t)
	e.failErr = fmt.Errorf("%w: Invalid Input Error", load.ErrRejected)
	e.fails.Store(1)
	writeSegment(t, e.dataDir, 1, event("evt_1"))
	l := e.loader(t, nil)
	rep, err := l.Run(context.Background())
	if err != nil || rep.Batches[0].Step != load.StepArchived || rep.Batches[0].Refused != 0 {
		t.Fatalf("run: %+v, %v", rep.Batches, err)
	}
	if got := files(t, filepath.Join(e.dataDir, "rejected")); len(got) != 0 {
		t.Fatalf("rejected dir: %v", got)
	}
	writeSegment(t, e.dataDir, 2, event("evt_2"))
	if _, err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := e.counts(t), "events=2 leads=4 experience=4 education=4"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}

func TestOneRunAtATime(t *testing.T) {
	e := newEnv(t)
	writeSegment(t, e.dataDir, 1, event("evt_1"))
	inside := make(chan struct{})
	release := make(chan struct{})
	l := e.loader(t, func(_ string, s load.Step) {
		if s == load.StepPlanned {
			close(inside)
			<-release
		}
	})
	done := make(chan error)
	go func() { _, err := l.Run(context.Background()); done <- err }()
	<-inside
	if _, err := e.loader(t, nil).Run(context.Background()); !errors.Is(err, load.ErrBusy) {
		t.Fatalf("second run = %v, want ErrBusy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSchedule(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		spec string
		runs int
	}{{"@every 1m", 1440}, {"*/5 * * * *", 288}, {"@every 30s", load.BigQueryDailyTableOperations + 1}, {"0 3 * * *", 1}} {
		s, err := load.ParseSchedule(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := load.RunsPerDay(s, from, load.BigQueryDailyTableOperations); got != tc.runs {
			t.Errorf("RunsPerDay(%q) = %d, want %d", tc.spec, got, tc.runs)
		}
	}
	if _, err := load.ParseSchedule("every minute"); err == nil {
		t.Error("bad spec accepted")
	}
}

// Runs never overlap: with a run slower than the interval, ticks are skipped rather than stacked. The run
// holds until the scheduler has logged a skipped tick (a handshake, not a sleep).
func TestSchedulerSkipsOverlappingRuns(t *testing.T) {
	var running, maxRunning, runs atomic.Int64
	skipped := make(chan struct{}, 16)
	log := slog.New(signalHandler{match: "skip", ch: skipped})
	release := make(chan struct{})
	s, err := load.NewScheduler("@every 1s", log, func(ctx context.Context) {
		n := running.Add(1)
		if n > maxRunning.Load() {
			maxRunning.Store(n)
		}
		if runs.Add(1) == 1 {
			<-release
		}
		running.Add(-1)
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-skipped:
	case <-time.After(20 * time.Second):
		t.Fatal("no tick was skipped while a run was going")
	}
	close(release)
	s.Stop(5 * time.Second)
	if maxRunning.Load() != 1 || runs.Load() < 1 {
		t.Fatalf("runs=%d, max concurrent=%d", runs.Load(), maxRunning.Load())
	}
}

// signalHandler is a slog handler that sends on ch for every record whose message contains match.
type signalHandler struct {
	match string
	ch    chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h signalHandler) WithGroup(string) slog.Handler            { return h }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return nil
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// uncounted stands for a warehouse that cannot say how many rows were new (BigQuery's emulator, for one).
type uncounted struct{ load.Warehouse }

func (u uncounted) Load(ctx context.Context, b load.Batch) (load.LoadResult, error) {
	_, err := u.Warehouse.Load(ctx, b)
	return load.LoadResult{Inserted: map[string]int64{"events": -1}}, err
}

func TestUnknownInsertCountsDoNotBreakMetrics(t *testing.T) {
	e := newEnv(t)
	writeSegment(t, e.dataDir, 1, event("evt_1"))
	l, err := load.New(load.Options{
		DataDir:    e.dataDir,
		Buffer:     e.buffer(),
		Warehouse:  func() (load.Warehouse, error) { return uncounted{duckdb.New(e.dbPath)}, nil },
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A crash in the middle of archiving leaves some segments archived and gone from buffer/ and others not; the
// next run archives the rest and finishes the batch.
func TestRunResumesAHalfDoneArchive(t *testing.T) {
	e := newEnv(t)
	writeSegment(t, e.dataDir, 1, event("evt_1"))
	writeSegment(t, e.dataDir, 2, event("evt_2"))
	crash := e.loader(t, func(_ string, s load.Step) {
		if s == load.StepLoaded {
			panic("crash")
		}
	})
	func() {
		defer func() { recover() }()
		crash.Run(context.Background())
	}()
	// What the archive step had done for the first segment before the crash.
	first := filepath.Join(e.dataDir, "buffer", "0000000001.ndjson")
	raw, _ := os.ReadFile(first)
	var zb strings.Builder
	zw := gzip.NewWriter(&zb)
	zw.Write(raw)
	zw.Close()
	os.MkdirAll(filepath.Join(e.dataDir, "archive"), 0o755)
	os.WriteFile(filepath.Join(e.dataDir, "archive", filepath.Base(first)+".gz"), []byte(zb.String()), 0o644)
	os.Remove(first)

	rep, err := e.loader(t, nil).Run(context.Background())
	if err != nil || len(rep.Batches) != 1 || rep.Batches[0].Step != load.StepArchived {
		t.Fatalf("resume: %+v, %v", rep.Batches, err)
	}
	if got := files(t, filepath.Join(e.dataDir, "archive")); strings.Join(got, ",") != "0000000001.ndjson.gz,0000000002.ndjson.gz" {
		t.Errorf("archive: %v", got)
	}
	if got, want := e.counts(t), "events=2 leads=4 experience=4 education=4"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}
