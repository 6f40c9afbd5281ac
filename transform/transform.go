// Package transform owns the meaning of SendPilot payloads: it turns buffered envelopes, bare events and
// quarantine records into four typed tables (events, leads, experience, education) as Arrow record batches
// and Parquet files, plus an NDJSON quarantine file for lines that cannot be read as events.
//
// Invariants:
//   - Nothing is dropped: every field is in a typed column, in a JSON column (events.data, events.extra,
//     leads.lead, experience.element, education.element), or the whole line is in quarantine with its source
//     file, line number and a reason. The lead and element columns leave out only the keys whose typed column
//     holds the value exactly as sent (takeText, takeInt, takeSkills).
//   - Output is deterministic: the same input gives the same rows in the same order, whatever the number of
//     workers.
//   - Memory is bounded by the chunk size, the number of workers and the row-group size, not by the input.
//   - The package reads no clock and no network; it only reads its inputs and writes its outputs.
package transform

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fastjson"
)

// QuarantineFile is the name of the quarantine output in the output directory.
const QuarantineFile = "quarantine.ndjson"

// Options tune a run. Zero values take the defaults.
type Options struct {
	// Workers is the number of goroutines parsing in parallel (default GOMAXPROCS).
	Workers int
	// ChunkBytes is how much input one worker takes at a time (default 1 MiB); a longer line is one chunk.
	ChunkBytes int
	// RowGroupBytes closes a Parquet row group once the Arrow data written to it passes this (default 32 MiB;
	// snappy makes that about a quarter on disk).
	RowGroupBytes int64
	// Allocator for Arrow buffers (default: a pool that recycles buffers between chunks).
	Allocator memory.Allocator
	// Keep, if set, decides which events to write (backfill filters): it gets the canonical and the raw event
	// name and occurred_at in Unix microseconds (ok false when the event has none). Events it drops, with
	// their leads and children, are counted in Counts.Filtered.
	Keep func(canonical, raw string, occurred int64, ok bool) bool
	// Progress, if set, is called after each chunk is written with the input bytes consumed so far.
	Progress func(bytesRead int64, counts Counts)
}

// WorkersLeavingCores is the number of workers that leaves n cores to work running beside a transform (a
// DuckDB load, serve's receiver): GOMAXPROCS-n, at least 1.
func WorkersLeavingCores(n int) int { return max(runtime.GOMAXPROCS(0)-n, 1) }

func (o *Options) defaults() {
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = 1 << 20
	}
	if o.RowGroupBytes <= 0 {
		o.RowGroupBytes = 16 << 20
	}
	if o.Allocator == nil {
		o.Allocator = new(poolAllocator)
	}
}

// TableResult describes one written Parquet file.
type TableResult struct {
	Table string
	Path  string
	Rows  int64
	Bytes int64
}

// Result describes a run.
type Result struct {
	Tables         []TableResult // in the order of Tables
	Counts         Counts
	InputBytes     int64 // bytes read from the inputs (decompressed)
	QuarantinePath string
}

// Table returns the result for a table name.
func (r Result) Table(name string) TableResult {
	for _, t := range r.Tables {
		if t.Table == name {
			return t
		}
	}
	return TableResult{Table: name}
}

// chunk is a run of whole lines from one file, processed by one worker.
type chunk struct {
	data      []byte
	file      string
	firstLine int64
	done      chan chunkResult
}

type chunkResult struct {
	records    [4]arrow.RecordBatch
	quarantine []byte
	counts     Counts
	bytes      int64
}

// Files reads the files in order and writes events.parquet, leads.parquet, experience.parquet,
// education.parquet and quarantine.ndjson to outDir. Files ending in .gz are decompressed. Outputs are written
// to temporary names and renamed only when complete, so a failed or cancelled run leaves no partial file under
// a final name.
func Files(ctx context.Context, paths []string, outDir string, opts Options) (Result, error) {
	srcs := make([]Source, len(paths))
	for i, p := range paths {
		srcs[i] = Source{Path: p}
	}
	return Sources(ctx, srcs, outDir, opts)
}

// Source is one input of a run: a whole file, or a byte range of an uncompressed NDJSON file that starts at
// the beginning of a line (backfills split big files so they can resume part way).
type Source struct {
	Path string
	// Offset and Length select a byte range; Length 0 means to the end. Only for plain NDJSON files.
	Offset, Length int64
	// FirstLine is the line number of the range's first line (default 1), for lineage and quarantine.
	FirstLine int64
}

// Sources is Files for whole files and file ranges.
func Sources(ctx context.Context, srcs []Source, outDir string, opts Options) (Result, error) {
	opts.defaults()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("create output dir: %w", err)
	}
	out, err := newOutputs(outDir, opts)
	if err != nil {
		return Result{}, err
	}
	defer out.abort()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *chunk, opts.Workers)
	order := make(chan *chunk, 2*opts.Workers)

	// Workers: parse chunks in parallel, each with its own builders, and recycle the chunks' buffers.
	bufs := make(chunkBuffers, cap(order)+opts.Workers+2)
	for range opts.Workers {
		go func() {
			f := newFlattener(opts.Allocator)
			f.keep = opts.Keep
			defer f.release()
			for c := range work {
				r := f.process(c)
				bufs.put(c.data)
				c.done <- r
			}
		}()
	}

	// Reader: cut the inputs into chunks of whole lines, in order.
	readErr := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(work)
		readErr <- readChunks(ctx, srcs, opts.ChunkBytes, bufs, func(c *chunk) bool {
			select {
			case order <- c:
			case <-ctx.Done():
				return false
			}
			select {
			case work <- c:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()

	// Writers: one goroutine per table appends its record batches in input order; this goroutine takes the
	// results in input order and hands them out. Parquet encoding costs more than parsing, so the tables are
	// encoded in parallel.
	tableErrs := make([]error, len(out.tables))
	feeds := make([]chan arrow.RecordBatch, len(out.tables))
	var writers sync.WaitGroup
	for i, t := range out.tables {
		feeds[i] = make(chan arrow.RecordBatch, 2)
		writers.Go(func() {
			for rec := range feeds[i] {
				if tableErrs[i] == nil {
					if tableErrs[i] = t.write(rec); tableErrs[i] != nil {
						cancel()
					}
				}
				rec.Release()
			}
		})
	}
	var res Result
	var writeErr error
	for c := range order {
		r := <-c.done
		for i, rec := range r.records {
			feeds[i] <- rec
		}
		if writeErr == nil {
			if writeErr = out.writeQuarantine(r.quarantine); writeErr != nil {
				cancel()
			}
		}
		res.Counts.add(r.counts)
		res.InputBytes += r.bytes
		if opts.Progress != nil {
			opts.Progress(res.InputBytes, res.Counts)
		}
	}
	for _, f := range feeds {
		close(f)
	}
	writers.Wait()
	if err := <-readErr; err != nil && !errors.Is(err, context.Canceled) {
		return res, err
	}
	if err := errors.Join(append(tableErrs, writeErr)...); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("transform: %w", err)
	}
	tables, err := out.commit()
	if err != nil {
		return res, err
	}
	res.Tables = tables
	res.QuarantinePath = filepath.Join(outDir, QuarantineFile)
	return res, nil
}

// process flattens every line of a chunk.
func (f *flattener) process(c *chunk) chunkResult {
	f.resetParsers(len(c.data))
	f.stats = Counts{}
	f.quarantine = f.quarantine[:0]
	c.lines(func(l []byte, src source) bool {
		f.line(l, src)
		return true
	})
	var r chunkResult
	for i, t := range f.tables {
		r.records[i] = t.take()
	}
	r.quarantine = append([]byte(nil), f.quarantine...)
	r.counts = f.stats
	r.bytes = int64(len(c.data))
	return r
}

// lines calls fn for each line of the chunk (without its newline, empty ones too) with its source, in order,
// until fn returns false.
func (c *chunk) lines(fn func(l []byte, src source) bool) {
	data, n := c.data, c.firstLine
	for len(data) > 0 {
		l := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if !fn(l, source{file: c.file, line: n}) {
			return
		}
		n++
	}
}

// readChunks cuts each file into chunks of whole lines of about size bytes and hands them to emit in order,
// until emit returns false: then it reads no further, in this file or the next.
func readChunks(ctx context.Context, srcs []Source, size int, bufs chunkBuffers, emit func(*chunk) bool) error {
	stopped := false
	take := func(c *chunk) bool {
		stopped = !emit(c)
		return !stopped
	}
	for _, src := range srcs {
		if err := readFileChunks(ctx, src, size, bufs, take); err != nil || stopped {
			return err
		}
	}
	return nil
}

func readFileChunks(ctx context.Context, src Source, size int, bufs chunkBuffers, emit func(*chunk) bool) error {
	path := src.Path
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if src.Offset > 0 {
		if _, err := f.Seek(src.Offset, io.SeekStart); err != nil {
			return fmt.Errorf("seek input %s: %w", path, err)
		}
	}
	if src.Length > 0 {
		r = io.LimitReader(f, src.Length)
	}
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("open gzip input %s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	if strings.HasSuffix(strings.TrimSuffix(path, ".gz"), ".json") {
		return readJSONValues(ctx, r, path, size, emit)
	}
	// Read straight into chunk buffers and cut each at its last newline; the partial line after it starts the
	// next chunk's buffer. A line longer than the buffer grows it.
	line := max(src.FirstLine, 1)
	buf := bufs.get(size)
	for {
		n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			return fmt.Errorf("read input %s: %w", path, err)
		}
		cut := len(buf)
		if !eof {
			cut = bytes.LastIndexByte(buf, '\n') + 1
			if cut == 0 { // no newline yet: one long line; read on with a bigger buffer
				bigger := append(bufs.get(2*len(buf)), buf...)
				bufs.put(buf)
				buf = bigger
				continue
			}
		}
		var next []byte
		if !eof {
			// Copy the partial line out before the chunk is handed on: its worker recycles the buffer.
			next = append(bufs.get(max(size, 2*(len(buf)-cut))), buf[cut:]...)
		}
		if cut > 0 {
			c := &chunk{data: buf[:cut], file: path, firstLine: line, done: make(chan chunkResult, 1)}
			line += int64(bytes.Count(c.data, []byte{'\n'}))
			if ctx.Err() != nil || !emit(c) {
				return ctx.Err()
			}
		} else {
			bufs.put(buf)
		}
		if eof {
			return nil
		}
		buf = next
	}
}

// chunkBuffers recycles the buffers input is read into. A worker hands a chunk's buffer back once the chunk is
// flattened (the JSON parser, the builders and the quarantine copy what they keep), so reading does not
// allocate and zero a fresh buffer for every chunk. It holds at most its capacity; other buffers are left to
// the garbage collector.
type chunkBuffers chan []byte

// get returns an empty buffer with room for at least n bytes.
func (p chunkBuffers) get(n int) []byte {
	select {
	case b := <-p:
		if cap(b) >= n {
			return b[:0]
		}
	default:
	}
	return make([]byte, 0, n)
}

// put hands back a buffer nothing refers to any more.
func (p chunkBuffers) put(b []byte) {
	select {
	case p <- b[:0]:
	default:
	}
}

// readJSONValues reads a .json file: a JSON array of events, one (possibly pretty-printed) event, or several
// events one after another. Each value becomes one line, numbered by its position in the file (the first is 1).
// If the file stops being valid JSON, the rest of it becomes one last line, which the flattener quarantines,
// so nothing is dropped.
func readJSONValues(ctx context.Context, r io.Reader, path string, size int, emit func(*chunk) bool) error {
	br := bufio.NewReaderSize(r, 1<<20)
	dec := json.NewDecoder(br)
	inArray := false
	if b, err := peekNonSpace(br); err == nil && b == '[' {
		if _, err := dec.Token(); err == nil {
			inArray = true
		}
	}
	c := &chunk{file: path, firstLine: 1, done: make(chan chunkResult, 1)}
	next := int64(1)
	flush := func() bool {
		if len(c.data) == 0 {
			return true
		}
		if ctx.Err() != nil || !emit(c) {
			return false
		}
		c = &chunk{file: path, firstLine: next, done: make(chan chunkResult, 1)}
		return true
	}
	for {
		if inArray && !dec.More() {
			break
		}
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			rest, _ := io.ReadAll(io.MultiReader(dec.Buffered(), br))
			c.data = append(c.data, bytes.ReplaceAll(rest, []byte{'\n'}, []byte{' '})...)
			c.data = append(c.data, '\n')
			next++
			break
		}
		var line bytes.Buffer
		json.Compact(&line, raw)
		c.data = append(append(c.data, line.Bytes()...), '\n')
		next++
		if len(c.data) >= size && !flush() {
			return ctx.Err()
		}
	}
	if !flush() {
		return ctx.Err()
	}
	return nil
}

// peekNonSpace returns the first byte that is not JSON white space, without consuming it.
func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}

// Lines calls fn for each non-empty input line of srcs, read as Sources reads them (byte ranges, gzip, .json
// values), in order. A quarantine record is read back as the line it keeps, with that line's original file
// and line number, as the transform reads it; file and line are the lineage the transform would give the
// line. text is valid only during the call. Loaders use it to take a batch's input apart line by line.
func Lines(ctx context.Context, srcs []Source, fn func(file string, line int64, text []byte) error) error {
	var p fastjson.Parser
	var ferr error
	bufs := make(chunkBuffers, 2)
	err := readChunks(ctx, srcs, 1<<20, bufs, func(c *chunk) bool {
		defer bufs.put(c.data)
		c.lines(func(l []byte, src source) bool {
			if len(bytes.TrimSpace(l)) == 0 {
				return true
			}
			if bytes.HasPrefix(l, []byte(`{"quarantine"`)) {
				if v, err := p.ParseBytes(l); err == nil {
					if obj, err := v.Object(); err == nil && isQuarantineRecord(obj) {
						if orig, inner, err := quarantined(obj, src); err == nil {
							ferr = fn(orig.file, orig.line, inner)
							return ferr == nil
						}
					}
				}
			}
			ferr = fn(src.file, src.line, l)
			return ferr == nil
		})
		return ferr == nil
	})
	return cmp.Or(ferr, err)
}
