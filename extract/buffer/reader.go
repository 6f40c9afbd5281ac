package buffer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"

	"sendpilot-loader/internal/fsutil"
)

// Reader is the buffer as its readers (the loader, status) see it: the sealed segments, and the only way to
// retire them. Sealed segments never change, so every method is safe while a writer appends, in this process
// or another; a loader's own lock keeps two loaders from retiring the same segment.
type Reader struct {
	dir  string
	opts Options
	log  *slog.Logger
	// lastPrune is when the archive was last pruned, in Unix nanoseconds.
	lastPrune atomic.Int64
}

// OpenReader returns a Reader of dir. It opens nothing and takes no lock; a missing dir reads as empty.
func OpenReader(dir string, opts Options) *Reader {
	opts.defaults()
	return &Reader{dir: dir, opts: opts, log: opts.Logger}
}

// Dir is the directory of the log.
func (r *Reader) Dir() string { return r.dir }

// Pending returns the paths of the sealed segments, oldest first. A loader may read them at any time; they
// leave the directory only through Archive or MoveAside.
func (r *Reader) Pending() ([]string, error) {
	segs, err := list(r.dir, sealedSuffix)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s.path
	}
	return out, nil
}

// Seal makes what a stopped writer left loadable: when no writer holds the directory, it repairs and seals
// the active segment a crash left behind (the recovery rule of Open). While a writer runs it does nothing:
// the writer seals by size and age.
func (r *Reader) Seal() error {
	lock, err := fsutil.TryLock(filepath.Join(r.dir, lockFile))
	if errors.Is(err, fsutil.ErrLocked) || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("seal buffer: %w", err)
	}
	defer lock.Unlock()
	if _, err := recoverDir(r.dir, r.log); err != nil {
		return fmt.Errorf("seal buffer: %w", err)
	}
	return nil
}

// Archive retires a sealed segment whose records are committed elsewhere: it writes a gzip copy to the
// archive directory (fsync'd) and only then removes the segment. It is idempotent: a segment already gone is
// not an error. An archive file is never overwritten; should another file already hold the name (a data dir
// restored from a backup, say) with other content, the copy gets a name of its own.
func (r *Reader) Archive(name string) error {
	n, ok := parseName(name)
	if !ok || n.suffix != sealedSuffix || name != filepath.Base(name) {
		return fmt.Errorf("archive segment %q: not a sealed segment name", name)
	}
	if r.opts.ArchiveDir == "" {
		return fmt.Errorf("archive segment %s: no archive directory configured", name)
	}
	src := filepath.Join(r.dir, name)
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
		return nil // archived (or moved aside) before a crash
	}
	if err := os.MkdirAll(r.opts.ArchiveDir, 0o755); err != nil {
		return fmt.Errorf("create archive dir: %w", err)
	}
	dst := filepath.Join(r.opts.ArchiveDir, name+archiveSuffix)
	tmp := dst + fsutil.TempSuffix
	if err := gzipFile(src, tmp); err != nil {
		return err
	}
	err := fsutil.PublishNew(tmp, dst)
	if errors.Is(err, os.ErrExist) {
		err = r.publishBeside(src, tmp, dst, n)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("archive segment %s: %w", name, err)
	}
	if err := os.Remove(src); err != nil {
		return fmt.Errorf("remove archived segment: %w", err)
	}
	if err := fsutil.SyncDir(r.dir); err != nil {
		return err
	}
	r.pruneArchive()
	return nil
}

// publishBeside handles an archive name that is already taken: a copy of the same segment (archived before
// a crash cut the removal short) is kept as it is; any other file keeps its name and the new copy gets one
// with a fresh stamp.
func (r *Reader) publishBeside(src, tmp, dst string, n segName) error {
	same, err := sameContent(src, dst)
	if err != nil {
		return err
	}
	if same {
		return os.Remove(tmp)
	}
	stem, err := newStem(n.seq)
	if err != nil {
		return err
	}
	alt := filepath.Join(r.opts.ArchiveDir, stem+sealedSuffix+archiveSuffix)
	r.log.Warn("archive name taken by another file; keeping both", "segment", filepath.Base(src), "existing", dst, "archived_as", alt)
	return fsutil.PublishNew(tmp, alt)
}

// MoveAside retires a sealed segment without loading it, into dir (created if needed), for a person to look
// at; nothing is deleted or overwritten. A segment already gone is not an error.
func (r *Reader) MoveAside(name, dir string) error {
	if n, ok := parseName(name); !ok || n.suffix != sealedSuffix || name != filepath.Base(name) {
		return fmt.Errorf("move aside segment %q: not a sealed segment name", name)
	}
	src := filepath.Join(r.dir, name)
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create aside dir: %w", err)
	}
	dst := filepath.Join(dir, name)
	if err := os.Link(src, dst); errors.Is(err, os.ErrExist) {
		// Linked before a crash cut the removal short, or another file holds the name: only the first may go on.
		a, errA := os.Stat(src)
		b, errB := os.Stat(dst)
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			return fmt.Errorf("move aside segment %s: %s holds another file: %w", name, dst, err)
		}
	} else if err != nil {
		// No hard link here (a file system without them, or not a regular file): rename, still never over
		// an existing file.
		if _, serr := os.Lstat(dst); !errors.Is(serr, os.ErrNotExist) {
			return fmt.Errorf("move aside segment %s: %w", name, err)
		}
		if rerr := os.Rename(src, dst); rerr != nil {
			return fmt.Errorf("move aside segment %s: %w", name, rerr)
		}
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return err
	}
	if err := os.Remove(src); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("move aside segment %s: %w", name, err)
	}
	return fsutil.SyncDir(r.dir)
}

// Stats describes what the buffer holds that has not been loaded yet.
type Stats struct {
	PendingSegments int       // sealed segments in the directory
	PendingBytes    int64     // bytes of all segments, sealed and active
	OldestPending   time.Time // receive time of the oldest record still in the directory; zero if none
	ActiveSegment   bool      // a writer holds an open segment (or a stopped one left it)
	BadFiles        int       // files moved aside by recovery, waiting for a person
}

// Stats reads the directory; it is meant for metrics and status pages, not hot paths.
func (r *Reader) Stats() (Stats, error) {
	var s Stats
	entries, err := os.ReadDir(r.dir)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read buffer dir: %w", err)
	}
	var oldest, active segment
	for _, e := range entries {
		n, ok := parseName(e.Name())
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // retired while we listed
		}
		seg := segment{segName: n, path: filepath.Join(r.dir, e.Name()), size: info.Size(), modTime: info.ModTime()}
		switch {
		case n.suffix == sealedSuffix:
			s.PendingSegments++
			s.PendingBytes += seg.size
			if oldest.path == "" || seg.seq < oldest.seq {
				oldest = seg
			}
		case n.suffix == activeSuffix:
			s.ActiveSegment = true
			s.PendingBytes += seg.size
			active = seg
		case strings.HasSuffix(n.suffix, badSuffix):
			s.BadFiles++
		}
	}
	switch {
	case oldest.path != "":
		s.OldestPending = r.firstRecordTime(oldest)
	case active.path != "":
		s.OldestPending = r.firstRecordTime(active)
	}
	return s, nil
}

// firstRecordTime returns the time Options.RecordTime reads from the start of a segment's first record, or
// the segment's modification time when it cannot (no RecordTime, file gone, no time there, empty file).
func (r *Reader) firstRecordTime(s segment) time.Time {
	if r.opts.RecordTime != nil {
		if f, err := os.Open(s.path); err == nil {
			head := make([]byte, 256)
			n, _ := io.ReadFull(f, head)
			f.Close()
			if t, ok := r.opts.RecordTime(head[:n]); ok {
				return t
			}
		}
	}
	return s.modTime
}

// pruneArchive removes archived segments older than ArchiveRetention, at most once every ten minutes.
func (r *Reader) pruneArchive() {
	keep := r.opts.ArchiveRetention
	now := r.opts.Now()
	if keep <= 0 || now.UnixNano()-r.lastPrune.Load() < int64(10*time.Minute) {
		return
	}
	r.lastPrune.Store(now.UnixNano())
	segs, err := list(r.opts.ArchiveDir, sealedSuffix+archiveSuffix)
	if err != nil {
		r.log.Warn("list archive for pruning", "err", err)
		return
	}
	for _, s := range segs {
		if now.Sub(s.modTime) > keep {
			if err := os.Remove(s.path); err != nil {
				r.log.Warn("prune archived segment", "file", s.path, "err", err)
			}
		}
	}
}

// gzipFile writes a gzip copy of src to dst and fsyncs it.
func gzipFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	defer in.Close()
	err = fsutil.WriteSynced(dst, 0o644, func(w io.Writer) error {
		zw := gzip.NewWriter(w)
		if _, err := io.Copy(zw, in); err != nil {
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", filepath.Base(src), err)
	}
	return nil
}

// sameContent reports whether the gzip file gz decompresses to exactly the bytes of plain.
func sameContent(plain, gz string) (bool, error) {
	a, err := os.Open(plain)
	if err != nil {
		return false, fmt.Errorf("open segment: %w", err)
	}
	defer a.Close()
	b, err := os.Open(gz)
	if err != nil {
		return false, fmt.Errorf("open archive file: %w", err)
	}
	defer b.Close()
	zr, err := gzip.NewReader(b)
	if err != nil {
		return false, nil // not a readable gzip file: certainly not our copy
	}
	ra, rb := bufio.NewReader(a), bufio.NewReader(zr)
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, errA := io.ReadFull(ra, bufA)
		nb, errB := io.ReadFull(rb, bufB)
		if na != nb || !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false, nil
		}
		endA := errors.Is(errA, io.EOF) || errors.Is(errA, io.ErrUnexpectedEOF)
		endB := errors.Is(errB, io.EOF) || errors.Is(errB, io.ErrUnexpectedEOF)
		switch {
		case endA && endB:
			return true, nil
		case endA != endB:
			return false, nil
		case errA != nil:
			return false, fmt.Errorf("read segment: %w", errA)
		case errB != nil:
			return false, nil
		}
	}
}
