package buffer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sendpilot-loader/internal/record"
)

func mustOpen(t *testing.T, dir string, opts Options) *Buffer {
	t.Helper()
	b, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func rec(i int) []byte { return fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", i%50)) }

// readAll returns every record of every sealed segment, in order, and fails on a line that is not complete JSON.
func readAll(t *testing.T, dir string) []string {
	t.Helper()
	segs := sealed(t, dir)
	var out []string
	for _, s := range segs {
		raw, err := os.ReadFile(s.path)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) == 0 || raw[len(raw)-1] != '\n' {
			t.Fatalf("segment %s does not end with a newline", s.path)
		}
		sc := bufio.NewScanner(strings.NewReader(string(raw)))
		sc.Buffer(nil, 1<<26)
		for sc.Scan() {
			rec, st := record.Open(append([]byte(nil), sc.Bytes()...))
			if st != record.Intact {
				t.Fatalf("segment %s has a line that is not an intact record: %q", s.path, sc.Text())
			}
			out = append(out, string(rec))
		}
	}
	return out
}

// sealed lists the sealed segments of dir, oldest first.
func sealed(t *testing.T, dir string) []segment {
	t.Helper()
	segs, err := list(dir, sealedSuffix)
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestConcurrentAppendsAreAllStoredOnce(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir, Options{SegmentMaxBytes: 8 << 10})
	const n = 2000
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := b.Append(context.Background(), rec(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, dir)
	want := make([]string, n)
	for i := range n {
		want[i] = string(rec(i))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("stored %d records, want %d distinct ones", len(got), n)
	}
	segs := sealed(t, dir)
	if len(segs) < 2 {
		t.Fatalf("expected size-based sealing into several segments, got %d", len(segs))
	}
	for _, s := range segs {
		if s.size > 8<<10 {
			t.Errorf("segment %s is %d bytes, over the 8KiB limit", s.path, s.size)
		}
	}
	for _, name := range names(t, dir) {
		if strings.HasSuffix(name, activeSuffix) {
			t.Errorf("active segment %s left after Close", name)
		}
	}
}

func TestRecordLargerThanSegmentGetsItsOwn(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir, Options{SegmentMaxBytes: 4 << 10})
	big := fmt.Appendf(nil, `{"big":"%s"}`, strings.Repeat("y", 10<<10))
	for _, r := range [][]byte{rec(1), big, rec(2)} {
		if err := b.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	segs := sealed(t, dir)
	if len(segs) != 3 {
		t.Fatalf("got %d segments, want 3 (small, big alone, small)", len(segs))
	}
	if got := readAll(t, dir); len(got) != 3 || got[1] != string(big) {
		t.Fatalf("records out of order or lost")
	}
}

func TestSealByAge(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir, Options{SegmentMaxAge: time.Millisecond})
	if err := b.Append(context.Background(), rec(1)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if segs := sealed(t, dir); len(segs) == 1 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("segment not sealed by age")
}

func TestSealAndSequence(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir, Options{})
	if err := b.Seal(); err != nil { // nothing to seal
		t.Fatal(err)
	}
	b.Append(context.Background(), rec(1))
	if err := b.Seal(); err != nil {
		t.Fatal(err)
	}
	segs := sealed(t, dir)
	if len(segs) != 1 || segs[0].seq != 1 {
		t.Fatalf("segments after Seal: %+v", segs)
	}
	b.Close()
	// A loader takes the segment away; numbering must not restart at 1.
	os.Remove(segs[0].path)
	b2 := mustOpen(t, dir, Options{})
	b2.Append(context.Background(), rec(2))
	b2.Close()
	segs = sealed(t, dir)
	if len(segs) != 1 || segs[0].seq != 2 {
		t.Fatalf("sequence restarted: %+v", segs)
	}
	if err := b2.Append(context.Background(), rec(3)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
}

func TestStats(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := mustOpen(t, dir, Options{RecordTime: func(line []byte) (time.Time, bool) { return at, strings.HasPrefix(string(line), `{"n":1,`) }})
	if s, _ := b.Stats(); s.PendingSegments != 0 || !s.OldestPending.IsZero() {
		t.Fatalf("empty buffer stats: %+v", s)
	}
	b.Append(context.Background(), rec(1))
	if s, _ := b.Stats(); s.OldestPending.IsZero() {
		t.Fatalf("active record not counted: %+v", s)
	}
	b.Seal()
	s, _ := b.Stats()
	if s.PendingSegments != 1 || !s.OldestPending.Equal(at) || s.PendingBytes == 0 {
		t.Fatalf("stats after seal: %+v", s)
	}
}

// faultyFile wraps a real segment file and fails on cue.
type faultyFile struct {
	segmentFile
	failWrite    atomic.Bool // write half the data, then fail with ENOSPC
	failSync     atomic.Bool // fail the next fsync with EIO
	failTruncate atomic.Bool
	syncDelay    time.Duration
	syncs        *atomic.Int64
	// inSync, if set, is sent to when an fsync starts; the fsync then waits for release to be closed.
	inSync  chan struct{}
	release chan struct{}
}

func (f *faultyFile) WriteAt(p []byte, off int64) (int, error) {
	if f.failWrite.Load() {
		n, _ := f.segmentFile.WriteAt(p[:len(p)/2], off)
		return n, syscall.ENOSPC
	}
	return f.segmentFile.WriteAt(p, off)
}

func (f *faultyFile) Sync() error {
	if f.syncs != nil {
		f.syncs.Add(1)
	}
	time.Sleep(f.syncDelay)
	if f.inSync != nil {
		select {
		case f.inSync <- struct{}{}:
		default:
		}
		<-f.release
	}
	if f.failSync.CompareAndSwap(true, false) {
		return syscall.EIO
	}
	return f.segmentFile.Sync()
}

func (f *faultyFile) Truncate(n int64) error {
	if f.failTruncate.Load() {
		return syscall.EIO
	}
	return f.segmentFile.Truncate(n)
}

// faults opens segments through faultyFile and applies set to each new one.
func faults(set func(*faultyFile)) func(string) (segmentFile, error) {
	return func(path string) (segmentFile, error) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return nil, err
		}
		ff := &faultyFile{segmentFile: osFile{f}}
		set(ff)
		return ff, nil
	}
}

func TestDiskFullLeavesNothingPartial(t *testing.T) {
	dir := t.TempDir()
	var current atomic.Pointer[faultyFile]
	b := mustOpen(t, dir, Options{openFile: faults(func(f *faultyFile) { current.Store(f) })})
	ctx := context.Background()
	if err := b.Append(ctx, rec(1)); err != nil {
		t.Fatal(err)
	}
	current.Load().failWrite.Store(true)
	err := b.Append(ctx, rec(2))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Append on a full disk = %v, want ErrFull", err)
	}
	// The next write goes to a fresh segment and works once space is back.
	if err := b.Append(ctx, rec(3)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if got, want := readAll(t, dir), []string{string(rec(1)), string(rec(3))}; !slices.Equal(got, want) {
		t.Fatalf("records = %q, want %q", got, want)
	}
}

func TestFsyncFailureIsNotAcknowledged(t *testing.T) {
	dir := t.TempDir()
	var current atomic.Pointer[faultyFile]
	b := mustOpen(t, dir, Options{openFile: faults(func(f *faultyFile) { current.Store(f) })})
	ctx := context.Background()
	b.Append(ctx, rec(1))
	current.Load().failSync.Store(true)
	if err := b.Append(ctx, rec(2)); err == nil || errors.Is(err, ErrFull) {
		t.Fatalf("Append with failing fsync = %v, want a write error", err)
	}
	if err := b.Append(ctx, rec(3)); err != nil {
		t.Fatalf("Append after a failed fsync, in a new segment: %v", err)
	}
	b.Close()
	if got, want := readAll(t, dir), []string{string(rec(1)), string(rec(3))}; !slices.Equal(got, want) {
		t.Fatalf("records = %q, want %q", got, want)
	}
}

func TestFailedRollbackStopsTheBuffer(t *testing.T) {
	dir := t.TempDir()
	var current atomic.Pointer[faultyFile]
	b := mustOpen(t, dir, Options{openFile: faults(func(f *faultyFile) { current.Store(f) })})
	ctx := context.Background()
	b.Append(ctx, rec(1))
	current.Load().failWrite.Store(true)
	current.Load().failTruncate.Store(true)
	if err := b.Append(ctx, rec(2)); err == nil {
		t.Fatal("Append succeeded on a failing disk")
	}
	if err := b.Ready(); err == nil {
		t.Fatal("Ready is nil after a failed rollback")
	}
	if err := b.Append(ctx, rec(3)); err == nil {
		t.Fatal("Append accepted a record after a failed rollback")
	}
}

func TestQuota(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir, Options{MaxBytes: 300})
	ctx := context.Background()
	var stored int
	for i := range 50 {
		err := b.Append(ctx, rec(i))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		stored++
	}
	if stored == 0 || stored == 50 {
		t.Fatalf("stored %d records under a 300 byte quota", stored)
	}
	if err := b.Ready(); !errors.Is(err, ErrFull) {
		// Ready compares usage to the quota; a record that did not fit may leave usage just under it.
		if err := b.Append(ctx, rec(99)); !errors.Is(err, ErrFull) {
			t.Fatalf("Append over quota = %v", err)
		}
	}
	// The loader empties the buffer: space is back after the next refresh.
	b.Seal()
	segs := sealed(t, dir)
	for _, s := range segs {
		os.Remove(s.path)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Append(ctx, rec(1)) != nil {
		if time.Now().After(deadline) {
			t.Fatal("quota not freed after segments were removed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestMinFreeSpace(t *testing.T) {
	dir := t.TempDir()
	var free atomic.Int64
	free.Store(1 << 30)
	b := mustOpen(t, dir, Options{MinFreeBytes: 1 << 20, freeSpace: func(string) (int64, error) { return free.Load(), nil }})
	ctx := context.Background()
	if err := b.Append(ctx, rec(1)); err != nil {
		t.Fatal(err)
	}
	free.Store(1 << 19)
	deadline := time.Now().Add(5 * time.Second)
	for b.Ready() == nil {
		if time.Now().After(deadline) {
			t.Fatal("Ready still nil with the disk nearly full")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := b.Append(ctx, rec(2)); !errors.Is(err, ErrFull) {
		t.Fatalf("Append with the disk nearly full = %v, want ErrFull", err)
	}
}

// With a slow disk, concurrent appends must share fsyncs instead of queueing one each.
func TestGroupCommitSharesFsyncs(t *testing.T) {
	dir := t.TempDir()
	var syncs atomic.Int64
	b := mustOpen(t, dir, Options{openFile: faults(func(f *faultyFile) { f.syncs, f.syncDelay = &syncs, 2*time.Millisecond })})
	const n = 640
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := b.Append(context.Background(), rec(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := syncs.Load(); got > n/4 {
		t.Fatalf("%d fsyncs for %d appends from 64 writers: group commit is not batching", got, n)
	}
}

func TestAppendRejectsNonLines(t *testing.T) {
	b := mustOpen(t, t.TempDir(), Options{})
	for _, bad := range [][]byte{nil, []byte("{}\n{}")} {
		if err := b.Append(context.Background(), bad); err == nil {
			t.Errorf("Append(%q) accepted", bad)
		}
	}
}

// A caller that gives up (its client went away) may reuse its memory at once: the record must then be either
// absent or intact, never the reused bytes.
func TestAbandonedAppendIsNotWritten(t *testing.T) {
	dir := t.TempDir()
	inSync, release := make(chan struct{}, 1), make(chan struct{})
	b := mustOpen(t, dir, Options{openFile: faults(func(f *faultyFile) { f.inSync, f.release = inSync, release })})
	first := make(chan error, 1)
	go func() { first <- b.Append(context.Background(), rec(1)) }()
	<-inSync // the writer is inside rec(1)'s fsync and takes nothing else until it is released
	line := rec(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := b.Append(ctx, line); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append = %v, want a deadline error", err)
	}
	copy(line, strings.Repeat("!", len(line)))
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	b.Close()
	if got, want := readAll(t, dir), []string{string(rec(1))}; !slices.Equal(got, want) {
		t.Fatalf("records = %q, want %q", got, want)
	}
}

// Records from bigRecord up are written from the caller's memory; mixed with small ones in one group commit
// they must still come out whole, framed and in order.
func TestBigRecordsAreWrittenInPlace(t *testing.T) {
	dir := t.TempDir()
	inSync, release := make(chan struct{}, 1), make(chan struct{})
	b := mustOpen(t, dir, Options{openFile: faults(func(f *faultyFile) { f.inSync, f.release = inSync, release })})
	big := func(c byte) []byte { return fmt.Appendf(nil, `{"big":"%s"}`, strings.Repeat(string(c), bigRecord+7)) }
	want := [][]byte{rec(0), rec(1), big('a'), rec(2), big('b'), big('c'), rec(3)}
	errs := make(chan error, len(want))
	go func() { errs <- b.Append(context.Background(), want[0]) }()
	<-inSync // hold the writer so the rest queue up and go in one commit
	for _, r := range want[1:] {
		go func() { errs <- b.Append(context.Background(), r) }()
	}
	close(release)
	for range want {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	got := readAll(t, dir)
	if len(got) != len(want) {
		t.Fatalf("stored %d records, want %d", len(got), len(want))
	}
	gotSet, wantSet := slices.Clone(got), make([]string, len(want))
	for i, w := range want {
		wantSet[i] = string(w)
	}
	slices.Sort(gotSet)
	slices.Sort(wantSet)
	if !slices.Equal(gotSet, wantSet) {
		t.Fatal("big records did not come out whole")
	}
}
