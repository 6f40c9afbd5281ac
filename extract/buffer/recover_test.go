package buffer

import (
	"sendpilot-loader/internal/fsutil"

	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Each case writes one active segment as a crash could have left it, opens the buffer, and checks what is
// sealed, what is kept aside, and that new records go to a new segment.
func TestRecoverActiveSegment(t *testing.T) {
	const a, b, c = `{"n":1}`, `{"n":2}`, `{"n":3}`
	tests := []struct {
		name     string
		content  string
		kept     []string // records sealed in segment 1
		aside    string   // file kept aside, if any
		asideHas string
		logged   string
	}{
		{"clean", a + "\n" + b + "\n", []string{a, b}, "", "", "recovered active segment"},
		{"torn last line", a + "\n" + b + "\n" + `{"n":`, []string{a, b}, "", "", "cutting torn tail"},
		{"complete but invalid last line", a + "\n" + `{"n":3` + "\n", []string{a}, "", "", "cutting torn tail"},
		{"preallocated zero tail", a + "\n" + strings.Repeat("\x00", 4096), []string{a}, "", "", "cutting preallocated space"},
		{"zero tail with newlines", a + "\n\x00\x00\n\x00\n", []string{a}, "", "", "cutting preallocated space"},
		{"torn line then zeros", a + "\n" + `{"n":` + strings.Repeat("\x00", 100), []string{a}, "", "", "cutting torn tail"},
		{"long valid lines", a + "\n" + `{"s":"` + strings.Repeat("z", 3<<20) + "\"}\n", []string{a, `{"s":"` + strings.Repeat("z", 3<<20) + `"}`}, "", "", "recovered active segment"},
		{"corrupt line in the middle", a + "\n" + "garbage\n" + c + "\n", []string{a}, "0000000001.tail.bad", "garbage\n" + c + "\n", "tail kept aside"},
		{"only a torn line", `{"n":`, nil, "", "", "cutting torn tail"},
		{"empty", "", nil, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, SegmentName(1, ActiveSuffix)), []byte(tc.content), 0o644)
			os.WriteFile(filepath.Join(dir, "0000000000.ndjson.tmp"), []byte("half"), 0o644)
			var logs bytes.Buffer
			buf, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if err := buf.Append(context.Background(), []byte(c)); err != nil {
				t.Fatal(err)
			}
			buf.Close()

			segs, _ := Sealed(dir)
			var first []string
			if len(tc.kept) > 0 {
				if segs[0].Seq != 1 {
					t.Fatalf("recovered segment not sealed as 1: %+v", segs)
				}
				raw, _ := os.ReadFile(segs[0].Path)
				first = strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
				segs = segs[1:]
			}
			if !slices.Equal(first, tc.kept) {
				t.Errorf("sealed recovered records: got %d (%.80q), want %d (%.80q)", len(first), first, len(tc.kept), tc.kept)
			}
			if len(segs) != 1 || segs[0].Seq != 2 {
				t.Fatalf("new records did not go to a new segment 2: %+v", segs)
			}
			if tc.aside != "" {
				raw, err := os.ReadFile(filepath.Join(dir, tc.aside))
				if err != nil || string(raw) != tc.asideHas {
					t.Errorf("kept-aside file %s = %q, %v; want %q", tc.aside, raw, err, tc.asideHas)
				}
			}
			for _, n := range names(t, dir) {
				if strings.HasSuffix(n, fsutil.TempSuffix) || strings.HasSuffix(n, ActiveSuffix) {
					t.Errorf("left behind: %s", n)
				}
			}
			if !strings.Contains(logs.String(), tc.logged) {
				t.Errorf("log lacks %q:\n%s", tc.logged, logs.String())
			}
		})
	}
}

func TestUnreadableActiveSegmentIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	// A directory where a segment should be: opening works, reading fails.
	if err := os.Mkdir(filepath.Join(dir, SegmentName(7, ActiveSuffix)), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Append(context.Background(), []byte(`{}`))
	b.Close()
	got := names(t, dir)
	if !slices.Contains(got, SegmentName(7, ActiveSuffix+BadSuffix)) || !slices.Contains(got, SegmentName(8, SealedSuffix)) {
		t.Fatalf("files after recovery: %v", got)
	}
}

func TestParseSegmentName(t *testing.T) {
	tests := []struct {
		name   string
		seq    uint64
		suffix string
		ok     bool
	}{
		{"0000000001.ndjson", 1, SealedSuffix, true},
		{"0000000042.ndjson.open", 42, ActiveSuffix, true},
		{"0000000042.ndjson.open.bad", 42, ".ndjson.open.bad", true},
		{"0000000042.tail.bad", 42, ".tail.bad", true},
		{"0000000042.ndjson.tmp", 0, "", false},
		{"last-sequence", 0, "", false},
		{"42.ndjson", 0, "", false},
		{"abcdefghij.ndjson", 0, "", false},
	}
	for _, tc := range tests {
		seq, suffix, ok := ParseSegmentName(tc.name)
		if seq != tc.seq || suffix != tc.suffix || ok != tc.ok {
			t.Errorf("ParseSegmentName(%q) = %d, %q, %v", tc.name, seq, suffix, ok)
		}
	}
	if got := SegmentName(42, SealedSuffix); got != "0000000042.ndjson" {
		t.Errorf("SegmentName = %s", got)
	}
}
