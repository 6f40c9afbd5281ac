package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sendpilot-loader/internal/fsutil"
	"sendpilot-loader/transform"
)

// ErrBusy means another process (or tick) is running batches for this data directory right now.
var ErrBusy = errors.New("another load is running for this data directory")

// Options configure a Loader. Zero values take the documented defaults.
type Options struct {
	// DataDir holds the loader's state/, quarantine/ and rejected/.
	DataDir string
	// Buffer is where the segments to load come from, and how they are retired once loaded.
	Buffer Buffer
	// Warehouse returns the warehouse for one run; the loader closes it at the end of the run.
	Warehouse func() (Warehouse, error)
	// MaxBatchBytes bounds the segments one batch takes (default 256 MiB); at least one segment is always taken.
	MaxBatchBytes int64
	// Attempts is how many times a run tries a failing load before leaving the batch for the next run
	// (default 3); Backoff is the first wait between attempts, doubled each time (default 2 s).
	Attempts int
	Backoff  time.Duration
	// Transform tunes the transform step.
	Transform transform.Options
	Logger    *slog.Logger
	// Registerer receives the loader's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	Now        func() time.Time
	// Once makes a run load at most one new batch instead of draining the backlog.
	Once bool
	// Progress, if set, is told of each batch a run finishes, and of how many segments were pending when the
	// run began.
	Progress func(m *Manifest, backlog int)
	// AfterStep, if set, is called after each step of a batch is recorded; tests use it to crash there.
	AfterStep func(batchID string, step Step)
}

// Loader runs batches for one data directory.
type Loader struct {
	opts     Options
	dirs     layout
	log      *slog.Logger
	m        *metrics
	instance string
	pause    atomic.Pointer[Pause]
}

// New prepares the loader's directories and its instance ID (a random name kept in state/instance-id, so
// batch and job IDs of replicas with separate data directories never collide).
func New(opts Options) (*Loader, error) {
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = 256 << 20
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 3
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Loader{opts: opts, dirs: newLayout(opts.DataDir), log: opts.Logger}
	if opts.Buffer == nil {
		return nil, errors.New("prepare loader: no buffer")
	}
	for _, d := range []string{l.dirs.batches, l.dirs.quarantine, l.dirs.rejected} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	id, err := instanceID(l.dirs.state)
	if err != nil {
		return nil, err
	}
	l.instance = id
	l.m = newMetrics(opts.Registerer)
	p, err := readPause(l.dirs.state)
	if err != nil {
		return nil, err
	}
	if p != nil {
		l.pause.Store(p)
		l.m.paused.Set(1)
	}
	return l, nil
}

// lock takes the data directory's load lock, or returns ErrBusy.
func (l *Loader) lock() (*fsutil.Lock, error) {
	lock, err := fsutil.TryLock(filepath.Join(l.dirs.state, "load.lock"))
	if errors.Is(err, fsutil.ErrLocked) {
		return nil, fmt.Errorf("%w: %w", ErrBusy, err)
	}
	return lock, err
}

func instanceID(stateDir string) (string, error) {
	path := filepath.Join(stateDir, "instance-id")
	raw, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(raw))) > 0 {
		return strings.TrimSpace(string(raw)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read instance id: %w", err)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make instance id: %w", err)
	}
	id := hex.EncodeToString(b[:])
	if err := fsutil.WriteFileAtomic(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("save instance id: %w", err)
	}
	return id, nil
}

// Report says what one Run did.
type Report struct {
	// Batches are the manifests of the batches this run finished or advanced, in order.
	Batches []*Manifest
}

// Segment is a sealed buffer segment as the loader plans with it.
type Segment struct {
	Name string // base name, as manifests record it
	Path string
	Size int64
}

// Pending lists the sealed segments that no batch has taken yet, oldest first.
func (l *Loader) Pending() ([]Segment, error) {
	paths, err := l.opts.Buffer.Pending()
	if err != nil {
		return nil, fmt.Errorf("list pending segments: %w", err)
	}
	ms, err := l.dirs.manifests()
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for _, m := range ms {
		if !m.Done() {
			for _, s := range m.Segments {
				taken[s] = true
			}
		}
	}
	var out []Segment
	for _, p := range paths {
		name := filepath.Base(p)
		if taken[name] {
			continue
		}
		info, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // retired by another loader since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("stat segment: %w", err)
		}
		out = append(out, Segment{Name: name, Path: p, Size: info.Size()})
	}
	return out, nil
}

// Run finishes any batch a previous run left unfinished, then loads the pending segments in successive
// batches of at most MaxBatchBytes until all that were pending when it began are loaded (one batch with
// Once). It returns ErrBusy at once if another run holds the lock. A batch whose load keeps failing is left at
// its step for the next run, and Run returns the error.
func (l *Loader) Run(ctx context.Context) (Report, error) {
	var rep Report
	lock, err := l.lock()
	if err != nil {
		return rep, err
	}
	defer lock.Unlock()
	start := l.opts.Now()
	defer func() { l.m.duration.Observe(l.opts.Now().Sub(start).Seconds()) }()

	// The warehouse is opened when a batch first needs it and closed after each batch (closeWarehouse).
	var wh Warehouse
	defer l.closeWarehouse(&wh)
	warehouse := func() (Warehouse, error) {
		if wh == nil {
			w, err := l.opts.Warehouse()
			if err != nil {
				return nil, fmt.Errorf("open warehouse: %w", err)
			}
			if err := w.Ensure(ctx); err != nil {
				w.Close()
				return nil, fmt.Errorf("prepare warehouse: %w", err)
			}
			wh = w
		}
		return wh, nil
	}

	ms, err := l.dirs.manifests()
	if err != nil {
		return rep, err
	}
	for _, m := range ms {
		if m.Done() {
			continue
		}
		l.log.Info("resuming batch", "batch", m.ID, "step", m.Step)
		if err := l.advance(ctx, m, warehouse); err != nil {
			rep.Batches = append(rep.Batches, m)
			return rep, err
		}
		rep.Batches = append(rep.Batches, m)
		l.closeWarehouse(&wh)
	}

	if err := l.opts.Buffer.Seal(); err != nil {
		l.log.Warn("seal active segment before load", "err", err)
	}
	m, err := l.plan()
	if err != nil {
		return rep, err
	}
	if m == nil {
		l.m.batches.WithLabelValues("idle").Inc()
		l.prune()
		if l.Paused() != nil {
			// Nothing to load, but the operator may have fixed the warehouse: see whether it is ready now.
			if _, err := warehouse(); errors.Is(err, ErrSystemic) {
				l.setPaused("", err)
				return rep, err
			} else if err == nil {
				l.clearPaused()
			}
		}
		return rep, nil
	}
	// Drain: batch after batch until everything that was pending when the run began is loaded (segments
	// sealed since wait for the next run, so a run under steady traffic still ends), or one batch with Once.
	backlog, err := l.Pending()
	if err != nil {
		return rep, err
	}
	before := make(map[string]bool, len(backlog)+len(m.Segments))
	for _, s := range backlog {
		before[s.Name] = true
	}
	for _, s := range m.Segments {
		before[s] = true
	}
	for {
		err = l.advance(ctx, m, warehouse)
		rep.Batches = append(rep.Batches, m)
		if err != nil {
			return rep, err
		}
		if l.opts.Progress != nil {
			l.opts.Progress(m, len(before))
		}
		if l.opts.Once || ctx.Err() != nil {
			break
		}
		l.closeWarehouse(&wh)
		next, err := l.Pending()
		if err != nil {
			return rep, err
		}
		if len(next) == 0 || !before[next[0].Name] {
			break
		}
		if m, err = l.plan(); err != nil || m == nil {
			return rep, err
		}
	}
	l.prune()
	return rep, nil
}

// closeWarehouse closes *wh, if open, and forgets it. Runs and backfills close their warehouse after each
// batch: DuckDB keeps its cache (up to its memory limit) while open, and the next batch's transform needs the
// memory more (internal/memlimit lowers the Go heap's share while DuckDB is open).
func (l *Loader) closeWarehouse(wh *Warehouse) {
	if *wh == nil {
		return
	}
	if err := (*wh).Close(); err != nil {
		l.log.Error("close warehouse", "err", err)
	}
	*wh = nil
}

// plan names a new batch of pending segments, or returns nil when there are none.
func (l *Loader) plan() (*Manifest, error) {
	segs, err := l.Pending()
	if err != nil || len(segs) == 0 {
		return nil, err
	}
	m := &Manifest{Step: StepPlanned, CreatedAt: l.opts.Now().UTC()}
	for _, s := range segs {
		if len(m.Segments) > 0 && m.Bytes+s.Size > l.opts.MaxBatchBytes {
			break
		}
		m.Segments = append(m.Segments, s.Name)
		m.Bytes += s.Size
	}
	// Segment names are unique forever, so the ID of the batch they form is too.
	m.ID = fmt.Sprintf("%s-%s-%s", l.instance, stem(m.Segments[0]), stem(m.Segments[len(m.Segments)-1]))
	if err := l.dirs.save(m, l.opts.Now()); err != nil {
		return nil, err
	}
	l.log.Info("planned batch", "batch", m.ID, "segments", len(m.Segments), "bytes", m.Bytes)
	l.after(m)
	return m, nil
}

// stem is a file name without its extensions.
func stem(name string) string {
	if i := strings.IndexByte(name, '.'); i > 0 {
		return name[:i]
	}
	return name
}

func (l *Loader) after(m *Manifest) {
	if l.opts.AfterStep != nil {
		l.opts.AfterStep(m.ID, m.Step)
	}
}

// advance takes a batch from its recorded step to the end.
func (l *Loader) advance(ctx context.Context, m *Manifest, warehouse func() (Warehouse, error)) error {
	for !m.Done() {
		var err error
		switch m.Step {
		case StepPlanned:
			if err = l.transformStep(ctx, m); err != nil && ctx.Err() == nil {
				err = l.transformFailed(m, err)
			}
		case StepTransformed:
			err = l.loadStep(ctx, m, warehouse)
		case StepLoaded:
			err = l.archiveStep(m)
		default:
			err = fmt.Errorf("batch %s has unknown step %q", m.ID, m.Step)
		}
		if err != nil {
			return err
		}
		if err := l.dirs.save(m, l.opts.Now()); err != nil {
			return err
		}
		l.after(m)
	}
	return nil
}

// maxTransformFailures is how many runs in a row may fail to transform a batch before its segments are moved
// aside, so that one unreadable input never stops every later batch.
const maxTransformFailures = 3

// transformFailed records a failed transform; after maxTransformFailures of them the batch's segments go to
// rejected/<batch>/ (nothing is deleted) and the batch ends, so later ones load. It returns the error to stop
// this run, or nil once the batch is set aside.
func (l *Loader) transformFailed(m *Manifest, cause error) error {
	m.Attempts++
	m.Error = cause.Error()
	l.log.Warn("transform failed", "batch", m.ID, "attempt", m.Attempts, "err", cause)
	if m.Attempts < maxTransformFailures {
		if err := l.dirs.save(m, l.opts.Now()); err != nil {
			l.log.Error("record failed transform", "err", err)
		}
		return cause
	}
	return l.reject(m, cause)
}

// transformStep writes the batch's Parquet files next to its manifest and keeps its quarantine output.
func (l *Loader) transformStep(ctx context.Context, m *Manifest) error {
	paths, err := l.segmentPaths(m)
	if err != nil {
		return err
	}
	res, err := transform.Files(ctx, paths, l.dirs.batchDir(m.ID), l.opts.Transform)
	if err != nil {
		return fmt.Errorf("transform batch %s: %w", m.ID, err)
	}
	m.Rows = map[string]int64{}
	for _, t := range res.Tables {
		m.Rows[t.Table] = t.Rows
	}
	m.Quarantined = res.Counts.Quarantined
	m.MinOccurred, m.MaxOccurred, m.HasOccurred, m.HasNullOccurred = OccurredRange(res.Counts)
	if _, err := l.keepQuarantine(m.ID, res); err != nil {
		return err
	}
	m.Step = StepTransformed
	return nil
}

// segmentPaths finds the paths of a batch's segments among the pending ones.
func (l *Loader) segmentPaths(m *Manifest) ([]string, error) {
	pending, err := l.opts.Buffer.Pending()
	if err != nil {
		return nil, fmt.Errorf("list pending segments: %w", err)
	}
	byName := make(map[string]string, len(pending))
	for _, p := range pending {
		byName[filepath.Base(p)] = p
	}
	paths := make([]string, len(m.Segments))
	for i, s := range m.Segments {
		p, ok := byName[s]
		if !ok {
			return nil, fmt.Errorf("transform batch %s: segment %s is no longer in the buffer", m.ID, s)
		}
		paths[i] = p
	}
	return paths, nil
}

// TimestampLayout writes a time as the text of a TIMESTAMP literal both warehouses read, to the microsecond
// they store.
const TimestampLayout = "2006-01-02 15:04:05.999999"

// The TIMESTAMP range both warehouses (and the manifest's JSON) can hold.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// OccurredRange turns a transform's occurred_at range into the batch's partition bounds, clamped to the
// range a warehouse (and the manifest) can hold: a bound outside it must not make the batch unrecordable.
// has is false, and lo and hi zero, when no event had an occurred_at.
func OccurredRange(c transform.Counts) (lo, hi time.Time, has, hasNull bool) {
	if c.Occurred > 0 {
		lo, hi = time.UnixMicro(c.MinOccurred).UTC(), time.UnixMicro(c.MaxOccurred).UTC()
		lo, hi = clampTime(lo), clampTime(hi)
	}
	return lo, hi, c.Occurred > 0, c.NoOccurred > 0
}

func clampTime(t time.Time) time.Time {
	switch {
	case t.Before(minTime):
		return minTime
	case t.After(maxTime):
		return maxTime
	}
	return t
}

// keepQuarantine copies a batch's quarantine output to quarantine/<id>.ndjson, if it has any lines, and
// returns that path.
func (l *Loader) keepQuarantine(id string, res transform.Result) (string, error) {
	if res.Counts.Quarantined == 0 {
		return "", nil
	}
	dst := filepath.Join(l.dirs.quarantine, id+".ndjson")
	raw, err := os.ReadFile(res.QuarantinePath)
	if err != nil {
		return "", fmt.Errorf("read quarantine output: %w", err)
	}
	if err := fsutil.WriteFileAtomic(dst, raw, 0o644); err != nil {
		return "", fmt.Errorf("keep quarantine output: %w", err)
	}
	l.log.Warn("lines quarantined", "batch", id, "lines", res.Counts.Quarantined, "file", dst)
	return dst, nil
}

// retry calls try up to Attempts times, waiting Backoff and then twice as long each time, and stops early on
// success, on ErrRejected or ErrSystemic (trying again cannot help) and when ctx ends. failed is told of each
// failure but those.
func (l *Loader) retry(ctx context.Context, try func() error, failed func(attempt int, err error)) error {
	rejected := func(err error) bool { return errors.Is(err, ErrRejected) || errors.Is(err, ErrSystemic) }
	return Retry(ctx, l.opts.Attempts, l.opts.Backoff, func(attempt int) error {
		err := try()
		if err != nil && !rejected(err) {
			failed(attempt, err)
		}
		return err
	}, rejected)
}

func (l *Loader) batchOf(m *Manifest) Batch {
	b := Batch{ID: m.ID, Files: map[string]string{}, Rows: m.Rows, MinOccurred: m.MinOccurred, MaxOccurred: m.MaxOccurred, HasNullOccurred: m.HasNullOccurred,
		// A manifest written before has_occurred existed has a range exactly when it has a bound.
		HasOccurred: m.HasOccurred || !m.MinOccurred.IsZero() || !m.MaxOccurred.IsZero()}
	for _, t := range transform.Tables {
		b.Files[t] = filepath.Join(l.dirs.batchDir(m.ID), t+".parquet")
	}
	return b
}

// loadStep loads the batch, retrying with backoff; a rejected batch is isolated.
func (l *Loader) loadStep(ctx context.Context, m *Manifest, warehouse func() (Warehouse, error)) error {
	var res LoadResult
	err := l.retry(ctx, func() error {
		wh, err := warehouse()
		if err == nil {
			res, err = wh.Load(ctx, l.batchOf(m))
		}
		return err
	}, func(attempt int, err error) {
		m.Attempts++
		m.Error = err.Error()
		l.log.Warn("load failed", "batch", m.ID, "attempt", attempt, "err", err)
	})
	if errors.Is(err, ErrRejected) {
		// The warehouse refused some of the batch's values: load the rest, keep out only the refused events.
		cause := err
		var wh Warehouse
		if wh, err = warehouse(); err == nil {
			err = l.isolate(ctx, m, wh, cause)
		}
		res.Inserted, res.BytesRead = m.Inserted, m.BytesRead
	}
	switch {
	case errors.Is(err, ErrSystemic):
		m.Error = err.Error()
		l.setPaused(m.ID, err)
		if serr := l.dirs.save(m, l.opts.Now()); serr != nil {
			l.log.Error("record paused load", "err", serr)
		}
		return fmt.Errorf("load batch %s: %w", m.ID, err)
	case err != nil:
		l.m.batches.WithLabelValues("failed").Inc()
		if serr := l.dirs.save(m, l.opts.Now()); serr != nil {
			l.log.Error("record failed load", "err", serr)
		}
		return fmt.Errorf("load batch %s: %w", m.ID, err)
	}
	l.clearPaused()
	m.Inserted, m.BytesRead, m.Error = res.Inserted, res.BytesRead, ""
	l.m.countBytesRead(res.BytesRead)
	for t, n := range res.Inserted {
		if n > 0 { // -1: the warehouse could not tell
			l.m.rows.WithLabelValues(t).Add(float64(n))
		}
	}
	l.m.batches.WithLabelValues("loaded").Inc()
	l.log.Info("loaded batch", "batch", m.ID, "rows", m.Rows, "inserted", m.Inserted)
	m.Step = StepLoaded
	return nil
}

// reject moves a refused batch's segments to rejected/<id>/ (nothing is deleted) so later batches go on.
func (l *Loader) reject(m *Manifest, cause error) error {
	l.log.Error("warehouse rejected batch; segments moved aside", "batch", m.ID, "err", cause,
		"dir", filepath.Join(l.dirs.rejected, m.ID))
	dir := filepath.Join(l.dirs.rejected, m.ID)
	for _, s := range m.Segments {
		if err := l.opts.Buffer.MoveAside(s, dir); err != nil {
			return fmt.Errorf("move rejected segment: %w", err)
		}
	}
	m.Error = cause.Error()
	m.Step = StepRejected
	l.m.batches.WithLabelValues("rejected").Inc()
	return nil
}

// archiveStep hands each segment to the buffer's archive; the batch's Parquet files go.
func (l *Loader) archiveStep(m *Manifest) error {
	for _, s := range m.Segments {
		if err := l.opts.Buffer.Archive(s); err != nil {
			return fmt.Errorf("archive batch %s: %w", m.ID, err)
		}
	}
	for _, t := range transform.Tables {
		os.Remove(filepath.Join(l.dirs.batchDir(m.ID), t+".parquet"))
	}
	os.Remove(filepath.Join(l.dirs.batchDir(m.ID), transform.QuarantineFile))
	m.Step = StepArchived
	return nil
}

// prune removes the manifests of all but the last 500 finished batches.
func (l *Loader) prune() {
	ms, err := l.dirs.manifests()
	if err != nil {
		return
	}
	var done []*Manifest
	for _, m := range ms {
		if m.Step == StepArchived {
			done = append(done, m)
		}
	}
	for len(done) > 500 {
		os.RemoveAll(l.dirs.batchDir(done[0].ID))
		done = done[1:]
	}
}
