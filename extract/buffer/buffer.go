// Package buffer is the durable, append-only, segmented NDJSON log that holds every accepted webhook until the
// loader has committed it to the warehouse.
//
// Invariants:
//   - Append returns nil only after the record and everything before it in its segment are fsync'd.
//   - Concurrent Appends share one write and one fsync (group commit).
//   - A record is never split across segments, and a failed write leaves no partial record behind.
//   - There is at most one active segment (*.ndjson.open); once sealed (*.ndjson) a segment never changes.
//   - After any stop, Open repairs the active segment and seals it; new records go to a new segment.
//   - Every record is framed with a CRC-32C (internal/record), checked on recovery and by every reader.
//   - Segment names never repeat, whatever happens to the sequence file (see segment.go), and an archive file
//     is never overwritten.
//   - The package owns its directory: it alone creates, seals, lists, retires (archives or moves aside) and
//     deletes segments. One writer (Open) holds the directory at a time, locked for its whole life; readers
//     (OpenReader) need no lock.
//
// The on-disk format and the recovery rule are written down in docs/buffer-format.md.
package buffer

import (
	"sendpilot-loader/internal/fsutil"
	"sendpilot-loader/internal/record"

	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrFull means the record was not stored because the buffer is over its quota or the disk is (nearly) full.
// It is temporary: the sender should retry later.
var ErrFull = errors.New("buffer full")

// ErrClosed means the buffer no longer accepts records.
var ErrClosed = errors.New("buffer closed")

// ErrInUse means another writer holds the buffer directory.
var ErrInUse = errors.New("buffer directory is in use by another writer")

// maxBatchBytes bounds how much one group commit writes, so one fsync never waits on an unbounded write.
const maxBatchBytes = 8 << 20

// preallocBytes is how far ahead of the records the active segment is zero-filled. Overwriting blocks that
// already exist lets fdatasync skip the file-size update in the file system journal: on ext4 that makes each
// group commit cheaper. The zeros are cut on seal, and recovery treats a zero tail as the end of the records.
const preallocBytes = 1 << 20

var zeros = make([]byte, 64<<10)

// Options tune a Buffer. Zero values take the documented defaults.
type Options struct {
	// SegmentMaxBytes seals the active segment before a record would take it past this size (default 64 MiB).
	// A record larger than this gets a segment of its own.
	SegmentMaxBytes int64
	// SegmentMaxAge seals a non-empty active segment whose first record is this old (default 60 s).
	SegmentMaxAge time.Duration
	// MaxBytes is the quota for all files in the directory; 0 means none.
	MaxBytes int64
	// MinFreeBytes refuses records that would leave less free disk space than this; 0 disables the check.
	MinFreeBytes int64
	// Logger receives recovery and rotation messages; nil discards them.
	Logger *slog.Logger
	// Registerer receives the buffer's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// RecordTime extracts the receive time of a record, for the age of the oldest pending record; nil uses
	// segment modification times.
	RecordTime func(line []byte) (time.Time, bool)
	// ArchiveDir is where Archive keeps gzip copies of retired segments; Archive fails without one.
	ArchiveDir string
	// ArchiveRetention removes archived segments older than this (checked as segments are archived); 0 keeps
	// them forever.
	ArchiveRetention time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// Fault injection for tests.
	openFile  func(path string) (segmentFile, error)
	freeSpace func(dir string) (int64, error)
}

// segmentFile is what the writer needs of an open segment.
type segmentFile interface {
	io.WriterAt
	Sync() error
	Truncate(size int64) error
	Close() error
}

// request is one Append waiting for the writer. Its state moves from queued to taken when the writer starts
// copying the line, or to abandoned when the caller gives up first. An abandoned line is never written; a
// taken one is answered with the outcome of its write, so the caller may reuse its memory once Append returns.
type request struct {
	line  []byte
	done  chan error
	state atomic.Int32
}

const (
	queued int32 = iota
	taken
	abandoned
)

// Buffer is the writer of a segment log, plus everything a Reader does. Its methods are safe for
// concurrent use.
type Buffer struct {
	*Reader
	dir  string
	opts Options
	log  *slog.Logger
	m    *metrics
	lock *fsutil.Lock

	mu     sync.RWMutex // guards closed against Appends racing Close
	closed bool
	reqs   chan *request
	seal   chan chan error
	stop   chan struct{}
	done   chan struct{}

	failed  atomic.Pointer[error] // set when the log can no longer be trusted for writing
	usage   atomic.Int64          // bytes of all files in dir
	free    atomic.Int64          // free bytes on the file system, refreshed every second
	sealedN atomic.Int64          // sealed segments in dir
	badN    atomic.Int64          // .bad files in dir, waiting for a person

	// Owned by the writer goroutine.
	active      segmentFile
	activeStem  string
	activeSize  int64 // bytes of records in the active segment
	activeAlloc int64 // bytes of the active file, records plus zero-filled space ahead of them
	activeFirst time.Time
	activeAt    atomic.Int64 // activeFirst in Unix nanoseconds, 0 when no active record; read by Stats
	nextSeq     uint64
	wbuf        []byte
	batch       []*request // the requests of the commit under way, reused from one to the next
}

func (o *Options) defaults() {
	if o.SegmentMaxBytes <= 0 {
		o.SegmentMaxBytes = 64 << 20
	}
	if o.SegmentMaxAge <= 0 {
		o.SegmentMaxAge = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.openFile == nil {
		o.openFile = func(path string) (segmentFile, error) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return nil, err
			}
			return osFile{f}, nil
		}
	}
	if o.freeSpace == nil {
		o.freeSpace = fsutil.FreeSpace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Open takes dir for writing (creating it if needed): it locks it for the life of the Buffer, recovers what
// the last writer left, and starts the writer. A second writer of the same directory, in any process, gets
// an error wrapping ErrInUse.
func Open(dir string, opts Options) (*Buffer, error) {
	opts.defaults()
	log := opts.Logger
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create buffer dir: %w", err)
	}
	if err := fsutil.SyncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
		return nil, err
	}
	lock, err := fsutil.TryLock(filepath.Join(dir, lockFile))
	if errors.Is(err, fsutil.ErrLocked) {
		return nil, fmt.Errorf("open buffer %s: %w: %w; stop the other serve, or give this one its own --data-dir", dir, ErrInUse, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open buffer: %w", err)
	}
	next, err := recoverDir(dir, log)
	if err == nil && opts.ArchiveDir != "" {
		err = sweepTemp(opts.ArchiveDir, log)
		if a, aerr := maxSeq(opts.ArchiveDir); err == nil {
			next, err = max(next, a), aerr
		}
	}
	if err != nil {
		lock.Unlock()
		return nil, fmt.Errorf("recover buffer: %w", err)
	}
	b := &Buffer{
		Reader:  OpenReader(dir, opts),
		dir:     dir,
		opts:    opts,
		log:     log,
		lock:    lock,
		reqs:    make(chan *request, 4096),
		seal:    make(chan chan error),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		nextSeq: next + 1,
	}
	b.m = newMetrics(opts.Registerer, b)
	b.refresh()
	go b.run()
	return b, nil
}

// Append stores line (one JSON document, no newline) as one record and returns once it is durable. An error
// means the record was not stored. If ctx ends after the writer has taken the record, Append still waits for
// that write's outcome (one fsync at most). ErrFull and ErrClosed are returned as such (wrapped). The caller may reuse line once Append returns.
func (b *Buffer) Append(ctx context.Context, line []byte) error {
	if len(line) < 2 || line[0] != '{' || line[len(line)-1] != '}' || bytes.IndexByte(line, '\n') >= 0 {
		return fmt.Errorf("append record: a record is one JSON object on one line")
	}
	r := &request{line: line, done: make(chan error, 1)}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return ErrClosed
	}
	select {
	case b.reqs <- r:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.mu.RUnlock()
		return fmt.Errorf("queue record: %w", ctx.Err())
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(queued, abandoned) {
			return fmt.Errorf("queue record: %w", ctx.Err())
		}
		// The writer holds the line: wait for the outcome of its write, at most one fsync away.
		return <-r.done
	}
}

// Seal seals the active segment if it holds any record, so that a loader can take it now.
func (b *Buffer) Seal() error {
	reply := make(chan error, 1)
	select {
	case b.seal <- reply:
		return <-reply
	case <-b.done:
		return ErrClosed
	}
}

// Ready reports why the buffer cannot take a record now, or nil.
func (b *Buffer) Ready() error {
	b.mu.RLock()
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if p := b.failed.Load(); p != nil {
		return *p
	}
	if q := b.opts.MaxBytes; q > 0 && b.usage.Load() >= q {
		return fmt.Errorf("%w: %d bytes used of a %d byte quota", ErrFull, b.usage.Load(), q)
	}
	if m := b.opts.MinFreeBytes; m > 0 && b.free.Load() < m {
		return fmt.Errorf("%w: %d bytes free on disk, %d required", ErrFull, b.free.Load(), m)
	}
	return nil
}

// Close stops accepting records, commits those already queued, seals the active segment and stops the writer.
func (b *Buffer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.done
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	b.lock.Unlock()
	if p := b.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// run is the writer: the only goroutine that touches segment files.
func (b *Buffer) run() {
	defer close(b.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case r := <-b.reqs:
			// Appending readied the writer in front of every other runnable goroutine: step back once, so the
			// handlers already running can queue their records for this commit too (an idle process loses
			// nothing). Fewer, larger commits save an fdatasync and a wake-up per record.
			runtime.Gosched()
			b.commit(b.gather(r))
		case reply := <-b.seal:
			reply <- b.sealActive()
		case <-tick.C:
			if b.active != nil && b.activeSize > 0 && b.opts.Now().Sub(b.activeFirst) >= b.opts.SegmentMaxAge {
				if err := b.sealActive(); err != nil {
					b.log.Error("seal segment by age", "err", err)
				}
			}
			b.refresh()
		case <-b.stop:
			for {
				select {
				case r := <-b.reqs:
					b.commit(b.gather(r))
					continue
				default:
				}
				break
			}
			if err := b.sealActive(); err != nil {
				b.log.Error("seal segment on close", "err", err)
				b.fail(err)
			}
			return
		}
	}
}

// gather collects the requests already waiting behind first, up to maxBatchBytes, into b.batch.
func (b *Buffer) gather(first *request) []*request {
	batch := append(b.batch[:0], first)
	size := len(first.line)
	for size < maxBatchBytes {
		select {
		case r := <-b.reqs:
			batch = append(batch, r)
			size += len(r.line) + 1
			continue
		default:
		}
		break
	}
	b.batch = batch
	return batch
}

// commit writes a batch with as few fsyncs as segment boundaries allow and answers every request.
func (b *Buffer) commit(batch []*request) {
	defer clear(batch) // once answered, keep no pointer to the callers' lines
	if p := b.failed.Load(); p != nil {
		for _, r := range batch {
			r.done <- *p
		}
		return
	}
	accepted := b.admit(batch)
	c := chunk{wbuf: b.wbuf[:0]}
	start := 0
	for i, r := range accepted {
		need := framedSize(r.line)
		if pending := b.activeSize + c.size; pending > 0 && pending+need > b.opts.SegmentMaxBytes {
			if c.size > 0 {
				answer(accepted[start:i], b.writeChunk(c.parts()))
				c, start = chunk{wbuf: c.wbuf[:0]}, i
			}
			if err := b.sealActive(); err != nil {
				b.log.Error("seal full segment", "err", err)
			}
		}
		if !r.state.CompareAndSwap(queued, taken) {
			continue // the caller gave up; its memory may already be reused
		}
		c.add(r.line)
	}
	if c.size > 0 {
		answer(accepted[start:], b.writeChunk(c.parts()))
	}
	b.wbuf = c.wbuf
	if cap(b.wbuf) > 2*maxBatchBytes {
		b.wbuf = nil // do not pin a buffer grown by one huge record
	}
	if len(accepted) > 0 {
		b.m.batchSize.Observe(float64(len(accepted)))
	}
}

// admit answers ErrFull to the requests that would break the quota or the free-space floor and returns the rest.
func (b *Buffer) admit(batch []*request) []*request {
	quota, floor := b.opts.MaxBytes, b.opts.MinFreeBytes
	if quota <= 0 && floor <= 0 {
		return batch
	}
	usage, free := b.usage.Load(), b.free.Load()
	kept := batch[:0]
	for _, r := range batch {
		need := framedSize(r.line)
		switch {
		case quota > 0 && usage+need > quota:
			r.done <- fmt.Errorf("%w: quota of %d bytes reached", ErrFull, quota)
		case floor > 0 && free-need < floor:
			r.done <- fmt.Errorf("%w: less than %d bytes free on disk", ErrFull, floor)
		default:
			usage += need
			free -= need
			kept = append(kept, r)
		}
	}
	return kept
}

// framedSize is the most room a record takes in a segment: framed, with its newline.
func framedSize(line []byte) int64 { return int64(len(line) + record.MaxOverhead + 1) }

func answer(rs []*request, err error) {
	for _, r := range rs {
		r.done <- err
	}
}

// bigRecord is the size from which a record is written from the caller's memory instead of being copied into
// the writer's buffer, so a large delivery is held once, not twice.
const bigRecord = 256 << 10

// chunk is what one group commit writes: small records framed into the writer's buffer, large ones referred
// to where they are (they stay valid until their Append is answered), in order.
type chunk struct {
	wbuf []byte
	done [][]byte // parts closed so far
	from int      // start in wbuf of the run of small records still open
	size int64
}

// add frames line into the chunk.
func (c *chunk) add(line []byte) {
	if len(line) >= bigRecord {
		c.close()
		c.done = append(c.done, line[:len(line)-1])
		c.size += int64(len(line) - 1)
	}
	n := len(c.wbuf)
	if len(line) >= bigRecord {
		c.wbuf = record.AppendTrailer(c.wbuf, line) // opens the next run
	} else {
		c.wbuf = record.Append(c.wbuf, line)
	}
	c.wbuf = append(c.wbuf, '\n')
	c.size += int64(len(c.wbuf) - n)
}

// close ends the open run of small records.
func (c *chunk) close() {
	if len(c.wbuf) > c.from {
		c.done = append(c.done, c.wbuf[c.from:])
	}
	c.from = len(c.wbuf)
}

// parts returns the chunk's bytes as parts to write one after the other.
func (c *chunk) parts() [][]byte {
	c.close()
	return c.done
}

// writeChunk appends parts to the active segment (opening one if needed) and fsyncs it. On failure the
// segment is cut back to its last durable size, so no partial record remains, and the next write starts a new
// segment.
func (b *Buffer) writeChunk(parts [][]byte) error {
	if b.active == nil {
		if err := b.openActive(); err != nil {
			return err
		}
	}
	var n int64
	for _, p := range parts {
		n += int64(len(p))
	}
	err := b.preallocate(b.activeSize + n)
	for off := b.activeSize; err == nil && len(parts) > 0; parts = parts[1:] {
		_, err = b.active.WriteAt(parts[0], off)
		off += int64(len(parts[0]))
	}
	if err == nil {
		start := time.Now()
		err = b.active.Sync()
		b.m.fsyncSeconds.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		b.rollback()
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return fmt.Errorf("%w: %w", ErrFull, err)
		}
		return fmt.Errorf("write segment: %w", err)
	}
	if b.activeSize == 0 {
		b.activeFirst = b.opts.Now()
		b.activeAt.Store(b.activeFirst.UnixNano())
	}
	b.activeSize += n
	b.usage.Add(n)
	b.free.Add(-n)
	b.m.bytesWritten.Add(float64(n))
	return nil
}

// preallocate zero-fills the active file up to at least end, in steps of preallocBytes. The zeros reach the
// disk with the next fsync, together with the records written over their start.
func (b *Buffer) preallocate(end int64) error {
	if end <= b.activeAlloc {
		return nil
	}
	target := (end + preallocBytes - 1) / preallocBytes * preallocBytes
	for off := b.activeAlloc; off < target; {
		n := min(int64(len(zeros)), target-off)
		if _, err := b.active.WriteAt(zeros[:n], off); err != nil {
			return fmt.Errorf("preallocate segment: %w", err)
		}
		off += n
		b.activeAlloc = off
	}
	return nil
}

// rollback cuts the active segment back to its last durable size after a failed write or fsync and retires it.
// If even that fails, the buffer refuses all further records: its files need a person's attention.
func (b *Buffer) rollback() {
	b.activeAlloc = b.activeSize
	err := b.active.Truncate(b.activeSize)
	if err == nil {
		err = b.active.Sync()
	}
	if err != nil {
		b.log.Error("cannot cut failed write from segment; refusing further records",
			"segment", b.activeStem+activeSuffix, "offset", b.activeSize, "err", err)
		b.active.Close()
		b.active = nil
		b.fail(fmt.Errorf("roll back failed write: %w", err))
		return
	}
	// After a failed fsync the page cache may no longer match the disk; start afresh in a new segment.
	if err := b.sealActive(); err != nil {
		b.fail(err)
	}
}

func (b *Buffer) fail(err error) {
	b.failed.CompareAndSwap(nil, &err)
}

// openActive creates the next segment. The sequence file is written first, so a number is not reused while
// it survives; the name's random stamp keeps names unique when it does not.
func (b *Buffer) openActive() error {
	seq := b.nextSeq
	stem, err := newStem(seq)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(b.dir, sequenceFile), []byte(strconv.FormatUint(seq, 10)+"\n"), 0o644); err != nil {
		return fmt.Errorf("record sequence: %w", err)
	}
	f, err := b.opts.openFile(filepath.Join(b.dir, stem+activeSuffix))
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("%w: create segment: %w", ErrFull, err)
		}
		return fmt.Errorf("create segment: %w", err)
	}
	if err := fsutil.SyncDir(b.dir); err != nil {
		f.Close()
		return err
	}
	b.nextSeq = seq + 1
	b.active, b.activeStem, b.activeSize, b.activeAlloc = f, stem, 0, 0
	return nil
}

// sealActive closes the active segment and renames it to its sealed name (an empty one is removed).
func (b *Buffer) sealActive() error {
	if b.active == nil {
		return nil
	}
	f, stem, size, alloc := b.active, b.activeStem, b.activeSize, b.activeAlloc
	b.active, b.activeSize, b.activeAlloc = nil, 0, 0
	b.activeAt.Store(0)
	if alloc > size {
		// Cut the zero-filled space: a sealed segment is records only.
		if err := f.Truncate(size); err != nil {
			f.Close()
			return fmt.Errorf("cut preallocated space: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("sync segment: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close segment: %w", err)
	}
	open := filepath.Join(b.dir, stem+activeSuffix)
	if size == 0 {
		if err := os.Remove(open); err != nil {
			return fmt.Errorf("remove empty segment: %w", err)
		}
		return fsutil.SyncDir(b.dir)
	}
	if err := fsutil.RenameDurable(open, filepath.Join(b.dir, stem+sealedSuffix)); err != nil {
		return fmt.Errorf("seal segment: %w", err)
	}
	b.sealedN.Add(1)
	b.m.sealed.Inc()
	b.log.Debug("sealed segment", "segment", stem+sealedSuffix, "bytes", size)
	return nil
}

// refresh re-reads the directory's size and the disk's free space; a loader may remove segments at any time.
func (b *Buffer) refresh() {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		b.log.Error("read buffer dir", "err", err)
		return
	}
	var total, sealed, bad int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			total += info.Size()
		}
		if n, ok := parseName(e.Name()); ok && n.suffix == sealedSuffix {
			sealed++
		} else if ok && strings.HasSuffix(n.suffix, badSuffix) {
			bad++
		}
	}
	b.usage.Store(total)
	b.sealedN.Store(sealed)
	b.badN.Store(bad)
	if free, err := b.opts.freeSpace(b.dir); err == nil {
		b.free.Store(free)
	} else {
		b.log.Error("measure free disk space", "err", err)
	}
}
