package load

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"sendpilot-loader/internal/fsutil"
	"sendpilot-loader/transform"
)

// maxIsolationLoads bounds the partial loads one isolation may run. Each refused event costs about two
// partial loads per halving, so this lets a batch carry a few dozen refused events; more than that is not a
// few bad values but something systemic, and loads pause instead of spending the warehouse's quota.
const maxIsolationLoads = 256

// lineRef locates one input line of a batch without holding it in memory.
type lineRef struct {
	path     string // the file holding the line's bytes
	off, len int64
	file     string // where the line came from, for lineage, when it is not path
	line     int64  // 1-based line number in file (or path)
}

// origin is the file the line came from.
func (r lineRef) origin() string { return cmp.Or(r.file, r.path) }

// isolation is one run of isolate.
type isolation struct {
	l         *Loader
	m         *Manifest
	wh        Warehouse
	dir       string
	transform transform.Options // how the batch was transformed: partial batches are transformed alike
	replace   bool              // the batch replaces stored rows; so do its partial batches
	loads     int
	inserted  map[string]int64
	replaced  map[string]int64 // with replace, stored rows the partial loads deleted
	bytesRead map[string]int64
	refused   []byte // quarantine records of the refused lines
	nRefused  int
	lastCause error
}

// isolate loads a batch that the warehouse refused as a whole (ErrRejected) in halves, and halves of those,
// so only the events the warehouse refuses on their own are kept out: those go to
// quarantine/<batch>-refused.ndjson with the warehouse's error, and everything else loads in this run.
//
// Every partial batch has an ID derived from the batch's and its place in the halving, and the halving is the
// same every time, so a crash in the middle resumes safely: partial batches already committed are skipped by
// the warehouse (its batch log or job IDs), and their rows' keys are there anyway.
func (l *Loader) isolate(ctx context.Context, m *Manifest, wh Warehouse, cause error) error {
	paths, err := l.segmentPaths(m)
	if err != nil {
		return err
	}
	refs, err := lineRefs(paths)
	if err != nil {
		return fmt.Errorf("isolate batch %s: %w", m.ID, err)
	}
	iso := &isolation{dir: filepath.Join(l.dirs.batchDir(m.ID), "isolate"), transform: l.opts.Transform}
	return l.isolateLines(ctx, m, wh, cause, refs, iso)
}

// isolateLines runs an isolation (its dir, transform and replace set) of the batch m made of the lines refs,
// as isolate says: the refused lines go to quarantine/<batch>-refused.ndjson, and m records them and what the
// partial loads inserted.
func (l *Loader) isolateLines(ctx context.Context, m *Manifest, wh Warehouse, cause error, refs []lineRef, iso *isolation) error {
	l.log.Warn("warehouse refused batch; isolating the events it refuses", "batch", m.ID, "err", cause)
	iso.l, iso.m, iso.wh, iso.lastCause = l, m, wh, cause
	iso.inserted, iso.replaced, iso.bytesRead = map[string]int64{}, map[string]int64{}, map[string]int64{}
	defer os.RemoveAll(iso.dir)
	if err := iso.load(ctx, refs, "h"); err != nil {
		return err
	}
	if iso.nRefused > 0 {
		path := filepath.Join(l.dirs.quarantine, m.ID+"-refused.ndjson")
		if err := fsutil.WriteFileAtomic(path, iso.refused, 0o644); err != nil {
			return fmt.Errorf("keep refused events: %w", err)
		}
		m.Refused, m.RefusedFile = iso.nRefused, path
		l.m.refused.Add(float64(iso.nRefused))
		l.log.Error("events refused by the warehouse kept in quarantine", "batch", m.ID, "events", iso.nRefused,
			"file", path, "err", iso.lastCause)
	}
	m.Inserted, m.BytesRead = iso.inserted, iso.bytesRead
	return nil
}

// backfillLines writes the input lines of a backfill batch, one per line, into path (plain NDJSON, so each can
// be read back by its offset) and indexes them with their original file and line.
func backfillLines(ctx context.Context, parts []part, path string) ([]lineRef, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create batch lines: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	var refs []lineRef
	var off int64
	err = transform.Lines(ctx, sources(parts), func(file string, line int64, text []byte) error {
		refs = append(refs, lineRef{path: path, off: off, len: int64(len(text)), file: file, line: line})
		off += int64(len(text)) + 1
		if _, err := w.Write(text); err != nil {
			return err
		}
		return w.WriteByte('\n')
	})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("write batch lines: %w", err)
	}
	return refs, nil
}

// load loads refs as one partial batch named by the batch ID and suffix, halving on refusal.
func (iso *isolation) load(ctx context.Context, refs []lineRef, suffix string) error {
	if len(refs) == 0 {
		return nil
	}
	if iso.loads++; iso.loads > maxIsolationLoads {
		return fmt.Errorf("%w: the warehouse refused more than %d partial loads of batch %s; the last refusal: %w",
			ErrSystemic, maxIsolationLoads, iso.m.ID, iso.lastCause)
	}
	b, err := iso.partial(ctx, refs, suffix)
	if err == nil {
		var res LoadResult
		err = iso.l.retry(ctx, func() error {
			var lerr error
			res, lerr = iso.wh.Load(ctx, b)
			return lerr
		}, func(attempt int, err error) {
			iso.l.log.Warn("partial load failed", "batch", b.ID, "attempt", attempt, "err", err)
		})
		if err == nil {
			addCounts(iso.inserted, res.Inserted)
			addCounts(iso.replaced, res.Replaced)
			addCounts(iso.bytesRead, res.BytesRead)
			return nil
		}
	}
	if !errors.Is(err, ErrRejected) {
		return err
	}
	iso.lastCause = err
	if len(refs) == 1 {
		return iso.refuse(refs[0], err)
	}
	half := len(refs) / 2
	if err := iso.load(ctx, refs[:half], suffix+"0"); err != nil {
		return err
	}
	return iso.load(ctx, refs[half:], suffix+"1")
}

// partial writes refs as quarantine records (so the transform keeps each line's original file and line number
// in the lineage columns) and transforms them into a partial batch.
func (iso *isolation) partial(ctx context.Context, refs []lineRef, suffix string) (Batch, error) {
	dir := filepath.Join(iso.dir, suffix)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Batch{}, fmt.Errorf("create partial batch dir: %w", err)
	}
	in := filepath.Join(dir, "lines.ndjson")
	f, err := os.Create(in)
	if err != nil {
		return Batch{}, fmt.Errorf("create partial batch: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	src := map[string]*os.File{}
	defer func() {
		for _, sf := range src {
			sf.Close()
		}
	}()
	var raw []byte
	for _, r := range refs {
		sf, err := src[r.path], error(nil)
		if sf == nil {
			if sf, err = os.Open(r.path); err == nil {
				src[r.path] = sf
			}
		}
		if err == nil {
			if int64(cap(raw)) < r.len {
				raw = make([]byte, r.len)
			}
			raw = raw[:r.len]
			_, err = sf.ReadAt(raw, r.off)
		}
		if err == nil {
			_, err = w.Write(append(transform.AppendQuarantineRecord(nil, "isolating", r.origin(), r.line, raw), '\n'))
		}
		if err != nil {
			f.Close()
			return Batch{}, fmt.Errorf("write partial batch: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return Batch{}, fmt.Errorf("write partial batch: %w", err)
	}
	if err := f.Close(); err != nil {
		return Batch{}, fmt.Errorf("write partial batch: %w", err)
	}
	res, err := transform.Files(ctx, []string{in}, filepath.Join(dir, "out"), iso.transform)
	if err != nil {
		return Batch{}, fmt.Errorf("transform partial batch: %w", err)
	}
	b := NewBatch(iso.m.ID+"-"+suffix, res)
	b.Replace = iso.replace
	return b, nil
}

// refuse keeps one line the warehouse refused on its own.
func (iso *isolation) refuse(r lineRef, cause error) error {
	raw, err := readRef(r)
	if err != nil {
		return fmt.Errorf("read refused line: %w", err)
	}
	iso.refused = append(transform.AppendQuarantineRecord(iso.refused, "refused by the warehouse: "+cause.Error(), r.origin(), r.line, raw), '\n')
	iso.nRefused++
	return nil
}

// lineRefs indexes the non-empty lines of the segments.
func lineRefs(paths []string) ([]lineRef, error) {
	var refs []lineRef
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("open segment: %w", err)
		}
		r := bufio.NewReaderSize(f, 1<<20)
		var off, n int64
		for {
			line, err := r.ReadSlice('\n')
			for errors.Is(err, bufio.ErrBufferFull) {
				var more []byte
				more, err = r.ReadSlice('\n')
				line = append(append([]byte(nil), line...), more...)
			}
			if len(line) > 0 {
				n++
				body := int64(len(line))
				if line[len(line)-1] == '\n' {
					body--
				}
				if body > 0 {
					refs = append(refs, lineRef{path: p, off: off, len: body, line: n})
				}
				off += int64(len(line))
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("read segment %s: %w", p, err)
			}
		}
		f.Close()
	}
	return refs, nil
}

func readRef(r lineRef) ([]byte, error) {
	f, err := os.Open(r.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, r.len)
	if _, err := f.ReadAt(buf, r.off); err != nil {
		return nil, err
	}
	return buf, nil
}
