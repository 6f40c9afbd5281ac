package buffer

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSecondWriterIsRefused(t *testing.T) {
	dir := t.TempDir()
	first := mustOpen(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
	// The first writer is untouched: its records still land.
	if err := first.Append(context.Background(), rec(1)); err != nil {
		t.Fatal(err)
	}
	first.Close()
	second, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after the first writer closed: %v", err)
	}
	second.Close()
	if got := readAll(t, dir); len(got) != 1 {
		t.Fatalf("records = %q", got)
	}
}

// A reader's Seal recovers what a dead writer left, but never touches a live writer's segment.
func TestReaderSealLeavesLiveWriterAlone(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, Options{})
	if err := w.Append(context.Background(), rec(1)); err != nil {
		t.Fatal(err)
	}
	r := OpenReader(dir, Options{})
	if err := r.Seal(); err != nil {
		t.Fatal(err)
	}
	if p, _ := r.Pending(); len(p) != 0 {
		t.Fatalf("reader sealed a live writer's segment: %v", p)
	}
	if err := w.Append(context.Background(), rec(2)); err != nil {
		t.Fatalf("writer broken by a reader's Seal: %v", err)
	}
	// Simulate a dead writer: its lock is gone, its active segment stays.
	w.lock.Unlock()
	if err := r.Seal(); err != nil {
		t.Fatal(err)
	}
	if p, _ := r.Pending(); len(p) != 1 {
		t.Fatalf("reader did not seal a dead writer's segment: %v", p)
	}
}

// Losing last-sequence (or restoring an old data dir) makes sequence numbers repeat; names, and so batch IDs
// and archive files, must not.
func TestNamesStayUniqueWhenTheSequenceIsLost(t *testing.T) {
	dir, archive := t.TempDir(), t.TempDir()
	opts := Options{ArchiveDir: archive}
	var seen []string
	for round := range 3 {
		b := mustOpen(t, dir, opts)
		if err := b.Append(context.Background(), rec(round)); err != nil {
			t.Fatal(err)
		}
		b.Close()
		p, _ := b.Pending()
		if len(p) != 1 {
			t.Fatalf("round %d: pending %v", round, p)
		}
		name := filepath.Base(p[0])
		if slices.Contains(seen, name) {
			t.Fatalf("round %d reused segment name %s", round, name)
		}
		seen = append(seen, name)
		if err := b.Archive(name); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, sequenceFile))
		os.RemoveAll(archive) // even with the archive gone, as after retention or a restore
		os.Mkdir(archive, 0o755)
	}
}

func TestArchiveNeverOverwrites(t *testing.T) {
	dir, archive := t.TempDir(), t.TempDir()
	name := "0000000001.ndjson" // a v1 name, as an old version wrote them: numbers could repeat
	os.WriteFile(filepath.Join(archive, name+archiveSuffix), []byte("an older segment's archive"), 0o644)
	os.WriteFile(filepath.Join(dir, name), []byte(`{"n":1}`+"\n"), 0o644)
	r := OpenReader(dir, Options{ArchiveDir: archive})
	if err := r.Archive(name); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(archive, name+archiveSuffix)); string(got) != "an older segment's archive" {
		t.Fatalf("existing archive file overwritten: %q", got)
	}
	segs, _ := list(archive, sealedSuffix+archiveSuffix)
	if len(segs) != 2 {
		t.Fatalf("archive holds %d segments, want both", len(segs))
	}
	if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment still in the buffer after Archive: %v", err)
	}
	// Archiving again (a resumed batch) is a no-op.
	if err := r.Archive(name); err != nil {
		t.Fatalf("second Archive = %v", err)
	}
}

// A crash between publishing an archive file and removing the segment leaves both; Archive again keeps one.
func TestArchiveResumesAfterCrash(t *testing.T) {
	dir, archive := t.TempDir(), t.TempDir()
	name := "0000000003-0badf00d.ndjson"
	content := []byte(`{"n":3}` + "\n")
	os.WriteFile(filepath.Join(dir, name), content, 0o644)
	r := OpenReader(dir, Options{ArchiveDir: archive})
	if err := gzipFile(filepath.Join(dir, name), filepath.Join(archive, name+archiveSuffix)); err != nil {
		t.Fatal(err)
	}
	if err := r.Archive(name); err != nil {
		t.Fatal(err)
	}
	segs, _ := list(archive, sealedSuffix+archiveSuffix)
	if len(segs) != 1 {
		t.Fatalf("archive holds %d copies, want 1", len(segs))
	}
	f, _ := os.Open(segs[0].path)
	zr, _ := gzip.NewReader(f)
	got, _ := io.ReadAll(zr)
	f.Close()
	if string(got) != string(content) {
		t.Fatalf("archive holds %q", got)
	}
}

func TestMoveAside(t *testing.T) {
	dir, aside := t.TempDir(), filepath.Join(t.TempDir(), "rejected", "b1")
	name := "0000000004-0badf00d.ndjson"
	os.WriteFile(filepath.Join(dir, name), []byte(`{"n":4}`+"\n"), 0o644)
	r := OpenReader(dir, Options{})
	for range 2 { // the second call is a no-op
		if err := r.MoveAside(name, aside); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(aside, name)); string(got) != `{"n":4}`+"\n" {
		t.Fatalf("moved-aside segment holds %q", got)
	}
	if p, _ := r.Pending(); len(p) != 0 {
		t.Fatalf("still pending: %v", p)
	}
	for _, bad := range []string{"../x.ndjson", "writer.lock", "0000000004-0badf00d.ndjson.open"} {
		if err := r.MoveAside(bad, aside); err == nil {
			t.Errorf("MoveAside(%q) accepted", bad)
		}
		if err := r.Archive(bad); err == nil {
			t.Errorf("Archive(%q) accepted", bad)
		}
	}
}
