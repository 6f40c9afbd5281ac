package load

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sendpilot-loader/internal/fsutil"
	"sendpilot-loader/transform"
)

// BackfillOptions configure one backfill run.
type BackfillOptions struct {
	// Files are the input files (already expanded from directories and globs), in order.
	Files []string
	// Keep filters events (see transform.Options.Keep); nil keeps all.
	Keep func(canonical, raw string, occurred int64, ok bool) bool
	// Filter describes Keep for the checkpoint: a run with other filters is another run.
	Filter string
	// DryRun transforms the inputs and reports counts without loading anything.
	DryRun bool
	// Restart forgets the checkpoint of this run and starts over.
	Restart bool
	// Replace makes the re-derived rows replace the stored rows of the same events (Batch.Replace) instead of
	// leaving them alone: every column, and the leads, experience and education of each event. A replace run
	// is a run of its own, with its own checkpoint.
	Replace bool
	// Overlap transforms the next batch while the current one loads: on 2 cores a 1 GB backfill into DuckDB
	// takes about 0.85× the time, and peaks at about 1.35× the memory (the transform's on top of DuckDB's,
	// under a Go heap lowered by DuckDB's cap: 351 MiB against 263 MiB at the default limits). Off, the
	// transform and the load take turns.
	Overlap bool
	// PartBytes splits plain NDJSON files into parts of about this size (default MaxBatchBytes / 4), each
	// checkpointed, so an interrupted run resumes inside a big file.
	PartBytes int64
	// Progress, if set, is called as the transform reads the input, with the input bytes read so far, the
	// total and what they held; it is called from one goroutine at a time. The load of the last batch comes
	// after the last call.
	Progress func(done, total int64, counts transform.Counts)
}

// BackfillReport says what a backfill did.
type BackfillReport struct {
	Parts, SkippedParts int   // parts processed now, and parts a previous run had finished
	Bytes               int64 // input bytes processed now
	Counts              transform.Counts
	Rows                map[string]int64 // rows written per table (before dedup)
	Inserted            map[string]int64 // rows new to the warehouse per table (-1: the warehouse cannot tell)
	Replaced            map[string]int64 // with Replace, stored rows deleted per table (-1: the warehouse cannot tell)
	QuarantineFiles     []string
	// Refused counts the events the warehouse refused on their own, kept in RefusedFiles
	// (quarantine/<batch>-refused.ndjson) while the rest of their batches loaded.
	Refused      int64
	RefusedFiles []string
}

// part is a checkpointed unit of a backfill: a whole file or a line-aligned range of one.
type part struct {
	transform.Source
	Size int64 `json:"size"`
	Done bool  `json:"done"`
}

// checkpoint is the on-disk progress of a backfill run, in state/backfill/<run>.json.
type checkpoint struct {
	Run string `json:"run"`
	// Generation is random, drawn when the run starts (or restarts), and part of every batch ID: a restarted
	// run, or the same command on another replica, never finds the BigQuery jobs of an earlier one and takes
	// them for its own. Resuming keeps it, so a resumed batch finds its own jobs.
	Generation string    `json:"generation"`
	Parts      []part    `json:"parts"`
	Start      time.Time `json:"started_at"`
}

// Backfill replays archived or exported payload files through the same transform and warehouse load as the
// scheduled loads: the natural keys make it idempotent, so overlapping backfills and loads add no duplicate
// rows. With Replace, the rows it derives take the place of the stored rows of the same events, so history
// is rebuilt with this release's transform and schema; that too is idempotent. Progress is checkpointed after each batch of parts; the same command resumes where an interrupted run
// stopped. It holds the data directory's load lock for the whole run.
func (l *Loader) Backfill(ctx context.Context, opts BackfillOptions) (BackfillReport, error) {
	rep := BackfillReport{Rows: map[string]int64{}, Inserted: map[string]int64{}}
	if opts.Replace {
		rep.Replaced = map[string]int64{}
	}
	lock, err := l.lock()
	if err != nil {
		return rep, err
	}
	defer lock.Unlock()
	if opts.PartBytes <= 0 {
		opts.PartBytes = max(l.opts.MaxBatchBytes/4, 1<<20)
	}
	cp, cpPath, err := l.backfillCheckpoint(opts)
	if err != nil {
		return rep, err
	}
	var total, done int64
	for _, p := range cp.Parts {
		total += p.Size
		if p.Done {
			done += p.Size
			rep.SkippedParts++
		}
	}
	var wh Warehouse
	defer l.closeWarehouse(&wh)
	// The transform runs in a goroutine of its own and hands each batch to the load. With Overlap it goes on
	// to the next batch while the one before loads (at most one transformed batch waits); without, it waits
	// for each load first, so the transform's memory never comes on top of the load's. Either way the
	// checkpoint advances batch by batch in order, after each load.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan backfillTransformed)
	loaded := make(chan struct{}, 1) // a load finished: without Overlap, the next transform may start
	before := done                   // bytes a previous run finished; done itself is the load's to advance
	go func() {
		defer close(batches)
		var read int64           // input bytes transformed so far, for progress
		var sum transform.Counts // and what they held
		for k, g := range backfillGroups(cp.Parts, l.opts.MaxBatchBytes) {
			if k > 0 && !opts.Overlap {
				select {
				case <-loaded:
				case <-ctx.Done():
					return
				}
			}
			id := fmt.Sprintf("bf-%s%s-%06d-%06d", cp.Run, cp.Generation, g.i, g.j-1)
			progress := func(n int64, c transform.Counts) {
				if opts.Progress != nil {
					c.Lines += sum.Lines
					c.Events += sum.Events
					c.Quarantined += sum.Quarantined
					opts.Progress(before+read+n, total, c)
				}
			}
			t := backfillTransformed{backfillGroup: g, id: id, parts: slices.Clone(cp.Parts[g.i:g.j])}
			began := time.Now()
			t.batch, t.res, t.err = l.backfillTransform(ctx, id, t.parts, opts, progress)
			l.log.Debug("backfill batch transformed", "batch", id, "seconds", time.Since(began).Seconds(), "err", t.err)
			for _, p := range t.parts {
				read += p.Size
			}
			sum.Lines += t.res.Counts.Lines
			sum.Events += t.res.Counts.Events
			sum.Quarantined += t.res.Counts.Quarantined
			select {
			case batches <- t:
			case <-ctx.Done():
				os.RemoveAll(t.dir(l))
				return
			}
			if t.err != nil {
				return
			}
		}
	}()
	for t := range batches {
		if t.err != nil {
			return rep, t.err
		}
		began := time.Now()
		err := l.backfillLoad(ctx, t, opts, &wh, &rep)
		l.log.Debug("backfill batch loaded", "batch", t.id, "seconds", time.Since(began).Seconds(), "err", err)
		os.RemoveAll(t.dir(l))
		if err != nil {
			return rep, err
		}
		l.closeWarehouse(&wh)
		select {
		case loaded <- struct{}{}:
		default:
		}
		for k := t.i; k < t.j; k++ {
			cp.Parts[k].Done = !opts.DryRun
			done += cp.Parts[k].Size
			rep.Bytes += cp.Parts[k].Size
			rep.Parts++
		}
		if !opts.DryRun {
			if err := saveJSON(cpPath, cp); err != nil {
				return rep, err
			}
		}
	}
	return rep, ctx.Err()
}

// backfillGroup is a batch of a backfill: the unfinished parts i to j-1 of its checkpoint.
type backfillGroup struct{ i, j int }

// backfillGroups groups the unfinished parts into batches of about maxBytes. The grouping depends only on the
// checkpoint, so a resumed run forms the same batches, with the same IDs.
func backfillGroups(parts []part, maxBytes int64) []backfillGroup {
	var groups []backfillGroup
	for i := 0; i < len(parts); {
		if parts[i].Done {
			i++
			continue
		}
		j, size := i, int64(0)
		for j < len(parts) && !parts[j].Done && (j == i || size+parts[j].Size <= maxBytes) {
			size += parts[j].Size
			j++
		}
		groups = append(groups, backfillGroup{i, j})
		i = j
	}
	return groups
}

// backfillTransformed is a backfill batch whose transform has run, or failed with err.
type backfillTransformed struct {
	backfillGroup
	id    string
	parts []part // the batch's input
	batch Batch
	res   transform.Result
	err   error
}

// dir is where the batch's Parquet files are written, removed once it is loaded.
func (t backfillTransformed) dir(l *Loader) string {
	return filepath.Join(l.dirs.state, "backfill", t.id)
}

// backfillTransform transforms one batch of parts into its own directory, written afresh.
func (l *Loader) backfillTransform(ctx context.Context, id string, parts []part, opts BackfillOptions, progress func(int64, transform.Counts)) (Batch, transform.Result, error) {
	dir := backfillTransformed{id: id}.dir(l)
	if err := os.RemoveAll(dir); err != nil {
		return Batch{}, transform.Result{}, fmt.Errorf("clear backfill batch %s: %w", id, err)
	}
	topts := l.backfillTransformOptions(opts)
	topts.Progress = progress
	if opts.Overlap && !opts.DryRun && topts.Workers == 0 {
		// The load of the batch before runs alongside on a core of its own: a worker less costs no time and
		// keeps that worker's chunks out of memory (1 GB backfill, 2 cores: 44 s and 515 MB peak RSS with one
		// worker, 43 s and 576 MB with two).
		topts.Workers = transform.WorkersLeavingCores(1)
	}
	res, err := transform.Sources(ctx, sources(parts), dir, topts)
	if err != nil {
		os.RemoveAll(dir)
		return Batch{}, res, fmt.Errorf("transform backfill batch %s: %w", id, err)
	}
	b := NewBatch(id, res)
	b.Replace = opts.Replace
	return b, res, nil
}

// backfillTransformOptions are the transform settings of a backfill's batches, and of their partial batches
// when events are isolated: the loader's, with the backfill's filters.
func (l *Loader) backfillTransformOptions(opts BackfillOptions) transform.Options {
	topts := l.opts.Transform
	topts.Keep = opts.Keep
	return topts
}

// sources are the transform inputs of parts.
func sources(parts []part) []transform.Source {
	srcs := make([]transform.Source, len(parts))
	for i, p := range parts {
		srcs[i] = p.Source
	}
	return srcs
}

// backfillLoad keeps a transformed batch's quarantine output and loads it (unless the run is a dry run),
// adding to rep what it did.
func (l *Loader) backfillLoad(ctx context.Context, t backfillTransformed, opts BackfillOptions, wh *Warehouse, rep *BackfillReport) error {
	res, b := t.res, t.batch
	rep.Counts.Lines += res.Counts.Lines
	rep.Counts.Events += res.Counts.Events
	rep.Counts.Quarantined += res.Counts.Quarantined
	rep.Counts.Filtered += res.Counts.Filtered
	for table, n := range b.Rows {
		rep.Rows[table] += n
	}
	if opts.DryRun {
		return nil
	}
	if dst, err := l.keepQuarantine(t.id, res); err != nil {
		return err
	} else if dst != "" {
		rep.QuarantineFiles = append(rep.QuarantineFiles, dst)
	}
	if *wh == nil {
		w, err := l.opts.Warehouse()
		if err == nil {
			err = w.Ensure(ctx)
		}
		if err != nil {
			return fmt.Errorf("prepare warehouse: %w", err)
		}
		*wh = w
	}
	var lr LoadResult
	err := l.retry(ctx, func() error {
		var err error
		lr, err = (*wh).Load(ctx, b)
		return err
	}, func(attempt int, err error) {
		l.log.Warn("backfill load failed", "batch", t.id, "attempt", attempt, "err", err)
	})
	if errors.Is(err, ErrRejected) {
		// The warehouse refused some of the batch's values: load the rest, keep out only the refused events.
		lr, err = l.isolateBackfill(ctx, t, opts, *wh, err, rep)
	}
	if err != nil {
		return fmt.Errorf("load backfill batch %s: %w", t.id, err)
	}
	addCounts(rep.Inserted, lr.Inserted)
	if opts.Replace {
		addCounts(rep.Replaced, lr.Replaced)
	}
	l.after(&Manifest{ID: t.id, Step: StepLoaded})
	return nil
}

// isolateBackfill isolates the events of a backfill batch that the warehouse refuses (cause), as a load does
// (isolate): its input lines are written out one per line, loaded in halves, transformed as the batch was (the
// same filters, the same Replace), and the refused ones kept in quarantine/<batch>-refused.ndjson, which rep
// lists. The halving depends only on the input, so a resumed run isolates the same way and skips the partial
// batches already loaded.
func (l *Loader) isolateBackfill(ctx context.Context, t backfillTransformed, opts BackfillOptions, wh Warehouse, cause error, rep *BackfillReport) (LoadResult, error) {
	refs, err := backfillLines(ctx, t.parts, filepath.Join(t.dir(l), "lines.ndjson"))
	if err != nil {
		return LoadResult{}, fmt.Errorf("isolate backfill batch %s: %w", t.id, err)
	}
	m := &Manifest{ID: t.id}
	iso := &isolation{dir: filepath.Join(t.dir(l), "isolate"), transform: l.backfillTransformOptions(opts), replace: opts.Replace}
	if err := l.isolateLines(ctx, m, wh, cause, refs, iso); err != nil {
		return LoadResult{}, err
	}
	if m.Refused > 0 {
		rep.Refused += int64(m.Refused)
		rep.RefusedFiles = append(rep.RefusedFiles, m.RefusedFile)
	}
	return LoadResult{Inserted: m.Inserted, Replaced: iso.replaced, BytesRead: m.BytesRead}, nil
}

// addCounts adds a load's row counts per table to a run's; -1 (the warehouse cannot tell) sticks.
func addCounts(sum, n map[string]int64) {
	for t, k := range n {
		if k < 0 || sum[t] < 0 {
			sum[t] = -1
		} else {
			sum[t] += k
		}
	}
}

// backfillCheckpoint loads the run's checkpoint, or plans the parts of a new run. A run is named by its inputs
// and filters, so the same command finds its own checkpoint.
func (l *Loader) backfillCheckpoint(opts BackfillOptions) (*checkpoint, string, error) {
	h := sha256.New()
	for _, f := range opts.Files {
		abs, _ := filepath.Abs(f)
		fmt.Fprintln(h, abs)
	}
	fmt.Fprintln(h, opts.Filter, opts.DryRun)
	if opts.Replace { // only then, so the runs of earlier releases keep their names
		fmt.Fprintln(h, "replace")
	}
	run := hex.EncodeToString(h.Sum(nil))[:12]
	path := filepath.Join(l.dirs.state, "backfill", run+".json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, "", fmt.Errorf("create backfill state dir: %w", err)
	}
	if !opts.Restart && !opts.DryRun {
		if raw, err := os.ReadFile(path); err == nil {
			var cp checkpoint
			if err := json.Unmarshal(raw, &cp); err != nil {
				return nil, "", fmt.Errorf("parse backfill checkpoint %s: %w", path, err)
			}
			return &cp, path, nil
		}
	}
	gen := make([]byte, 3)
	if _, err := rand.Read(gen); err != nil {
		return nil, "", fmt.Errorf("draw backfill generation: %w", err)
	}
	cp := &checkpoint{Run: run, Generation: hex.EncodeToString(gen), Start: l.opts.Now().UTC()}
	for _, f := range opts.Files {
		parts, err := splitFile(f, opts.PartBytes)
		if err != nil {
			return nil, "", err
		}
		cp.Parts = append(cp.Parts, parts...)
	}
	if !opts.DryRun {
		if err := saveJSON(path, cp); err != nil {
			return nil, "", err
		}
	}
	return cp, path, nil
}

// splitFile cuts a plain NDJSON file into line-aligned parts of about size bytes; other files are one part.
func splitFile(path string, size int64) ([]part, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat input: %w", err)
	}
	whole := []part{{Source: transform.Source{Path: path}, Size: info.Size()}}
	if strings.HasSuffix(path, ".gz") || strings.HasSuffix(path, ".json") || info.Size() <= size {
		return whole, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var parts []part
	var off, start, line int64 = 0, 0, 1
	first := int64(1)
	for {
		b, err := r.ReadSlice('\n')
		off += int64(len(b))
		if len(b) > 0 && b[len(b)-1] == '\n' {
			line++
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if off-start >= size || (errors.Is(err, io.EOF) && off > start) {
			parts = append(parts, part{Source: transform.Source{Path: path, Offset: start, Length: off - start, FirstLine: first}, Size: off - start})
			start, first = off, line
		}
		if errors.Is(err, io.EOF) {
			return parts, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read input %s: %w", path, err)
		}
	}
}

func saveJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if err := fsutil.WriteFileAtomic(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("save %s: %w", filepath.Base(path), err)
	}
	return nil
}
