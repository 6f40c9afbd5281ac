package buffer

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"sendpilot-loader/internal/fsutil"
	"sendpilot-loader/internal/record"
)

// framed returns the segment bytes a format-v2 writer writes for recs.
func framed(recs ...string) string {
	var out []byte
	for _, r := range recs {
		out = append(record.Append(out, []byte(r)), '\n')
	}
	return string(out)
}

// Each case writes one active segment as a crash could have left it, opens the buffer, and checks what is
// sealed, what is kept aside, and that new records go to a new segment.
func TestRecoverActiveSegment(t *testing.T) {
	const a, b, c = `{"n":1}`, `{"n":2}`, `{"n":3}`
	const v1, v2 = "0000000001", "0000000001-0badf00d"
	flipped := []byte(framed(b))
	flipped[3] ^= 1 // {"n":2 becomes {"o":2: still JSON, wrong checksum
	tests := []struct {
		name     string
		stem     string
		content  string
		kept     []string // records sealed in segment 1
		asideHas string   // what <stem>.tail.bad holds; "" for no such file
		logged   string
	}{
		{"v1 clean", v1, a + "\n" + b + "\n", []string{a, b}, "", "recovered active segment"},
		{"v1 torn last line", v1, a + "\n" + b + "\n" + `{"n":`, []string{a, b}, `{"n":`, "cutting torn tail"},
		{"v1 complete but invalid last line", v1, a + "\n" + `{"n":3` + "\n", []string{a}, `{"n":3` + "\n", "cutting torn tail"},
		{"v1 preallocated zero tail", v1, a + "\n" + strings.Repeat("\x00", 4096), []string{a}, "", "cutting preallocated space"},
		{"v1 zeros with newlines are not zeros", v1, a + "\n\x00\x00\n\x00\n", []string{a}, "\x00\x00\n\x00\n", "cutting torn tail"},
		{"v1 torn line then zeros", v1, a + "\n" + `{"n":` + strings.Repeat("\x00", 100), []string{a}, `{"n":`, "cutting preallocated space"},
		{"v1 long valid lines", v1, a + "\n" + `{"s":"` + strings.Repeat("z", 3<<20) + "\"}\n", []string{a, `{"s":"` + strings.Repeat("z", 3<<20) + `"}`}, "", "recovered active segment"},
		{"v1 corrupt line in the middle", v1, a + "\n" + "garbage\n" + c + "\n", []string{a}, "garbage\n" + c + "\n", "tail kept aside"},
		{"v1 only a torn line", v1, `{"n":`, nil, `{"n":`, "cutting torn tail"},
		{"v1 empty", v1, "", nil, "", ""},
		{"v2 clean", v2, framed(a, b), []string{a, b}, "", "recovered active segment"},
		{"v2 flipped byte", v2, framed(a) + string(flipped) + framed(c), []string{a}, string(flipped) + framed(c), "tail kept aside"},
		{"v2 line without checksum", v2, framed(a) + b + "\n", []string{a}, b + "\n", "cutting torn tail"},
		{"v2 torn checksum", v2, framed(a) + framed(b)[:len(framed(b))-5], []string{a}, framed(b)[:len(framed(b))-5], "cutting torn tail"},
		{"v2 zero tail", v2, framed(a) + strings.Repeat("\x00", 1<<20), []string{a}, "", "cutting preallocated space"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, tc.stem+activeSuffix), []byte(tc.content), 0o644)
			os.WriteFile(filepath.Join(dir, "0000000000.ndjson"+fsutil.TempSuffix), []byte("half"), 0o644)
			var logs bytes.Buffer
			buf, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if err := buf.Append(context.Background(), []byte(c)); err != nil {
				t.Fatal(err)
			}
			buf.Close()

			segs := sealed(t, dir)
			var first []string
			if len(tc.kept) > 0 {
				if segs[0].stem != tc.stem {
					t.Fatalf("recovered segment not sealed under its name: %+v", segs)
				}
				raw, _ := os.ReadFile(segs[0].path)
				for _, l := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
					rec, _ := record.Open([]byte(l))
					first = append(first, string(rec))
				}
				segs = segs[1:]
			}
			if !slices.Equal(first, tc.kept) {
				t.Errorf("sealed recovered records: got %d (%.80q), want %d (%.80q)", len(first), first, len(tc.kept), tc.kept)
			}
			if len(segs) != 1 || segs[0].seq != 2 || !segs[0].v2 {
				t.Fatalf("new records did not go to a new v2 segment 2: %+v", segs)
			}
			raw, err := os.ReadFile(filepath.Join(dir, tc.stem+tailSuffix))
			if tc.asideHas == "" && err == nil {
				t.Errorf("unexpected kept-aside file holding %q", raw)
			}
			if tc.asideHas != "" && string(raw) != tc.asideHas {
				t.Errorf("kept-aside file = %q, %v; want %q", raw, err, tc.asideHas)
			}
			for _, n := range names(t, dir) {
				if strings.HasSuffix(n, fsutil.TempSuffix) || strings.HasSuffix(n, activeSuffix) {
					t.Errorf("left behind: %s", n)
				}
			}
			if !strings.Contains(logs.String(), tc.logged) {
				t.Errorf("log lacks %q:\n%s", tc.logged, logs.String())
			}
		})
	}
}

// FuzzRecoverActiveSegment checks the recovery rule on any bytes: what is kept, what is moved aside and the
// zeros cut add up to the input; the kept part is whole valid records; and no complete valid record of the
// input is lost (each is kept or in the aside copy).
func FuzzRecoverActiveSegment(f *testing.F) {
	f.Add([]byte(framed(`{"n":1}`, `{"n":2}`)), true)
	f.Add([]byte(framed(`{"n":1}`)+"garbage\n"+framed(`{"n":3}`)+"\x00\x00"), true)
	f.Add([]byte(`{"n":1}`+"\n"+`{"n":`+"\x00\x00\n\x00"), false)
	f.Add([]byte("\x00\x00\x00"), false)
	f.Fuzz(func(t *testing.T, content []byte, v2 bool) {
		dir := t.TempDir()
		stem := "0000000001"
		if v2 {
			stem += "-0badf00d"
		}
		if err := os.WriteFile(filepath.Join(dir, stem+activeSuffix), content, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := recoverDir(dir, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		kept, _ := os.ReadFile(filepath.Join(dir, stem+sealedSuffix))
		aside, _ := os.ReadFile(filepath.Join(dir, stem+tailSuffix))
		if !bytes.HasPrefix(content, kept) || !bytes.HasPrefix(content[len(kept):], aside) {
			t.Fatalf("kept %q and aside %q are not the input's parts in order", kept, aside)
		}
		if rest := content[len(kept)+len(aside):]; len(bytes.Trim(rest, "\x00")) > 0 {
			t.Fatalf("cut %q, which is not only zero bytes", rest)
		}
		for _, l := range bytes.SplitAfter(kept, []byte{'\n'}) {
			if len(l) > 0 && (l[len(l)-1] != '\n' || !validRecord(bytes.Clone(l[:len(l)-1]), v2)) {
				t.Fatalf("kept line %q is not a whole valid record", l)
			}
		}
		lines := bytes.SplitAfter(content, []byte{'\n'})
		var off int
		for _, l := range lines {
			start := off
			off += len(l)
			if len(l) == 0 || l[len(l)-1] != '\n' || !validRecord(bytes.Clone(l[:len(l)-1]), v2) {
				continue
			}
			if off > len(kept)+len(aside) || (start < len(kept) && off > len(kept)) {
				t.Fatalf("valid record %q at offset %d is neither kept nor kept aside whole", l, start)
			}
		}
	})
}

func TestUnreadableActiveSegmentIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	// A directory where a segment should be: opening works, reading fails.
	if err := os.Mkdir(filepath.Join(dir, "0000000007"+activeSuffix), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Append(context.Background(), []byte(`{}`))
	b.Close()
	if got := names(t, dir); !slices.Contains(got, "0000000007"+activeSuffix+badSuffix) {
		t.Fatalf("files after recovery: %v", got)
	}
	if segs := sealed(t, dir); len(segs) != 1 || segs[0].seq != 8 {
		t.Fatalf("new segment after recovery: %+v", segs)
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		name   string
		seq    uint64
		stem   string
		suffix string
		v2, ok bool
	}{
		{"0000000001.ndjson", 1, "0000000001", sealedSuffix, false, true},
		{"0000000042.ndjson.open", 42, "0000000042", activeSuffix, false, true},
		{"0000000042.ndjson.open.bad", 42, "0000000042", ".ndjson.open.bad", false, true},
		{"0000000042.tail.bad", 42, "0000000042", tailSuffix, false, true},
		{"0000000042-9f86d081.ndjson", 42, "0000000042-9f86d081", sealedSuffix, true, true},
		{"0000000042-9f86d081.ndjson.open", 42, "0000000042-9f86d081", activeSuffix, true, true},
		{"0000000042-9f86d081.ndjson.gz", 42, "0000000042-9f86d081", ".ndjson.gz", true, true},
		{"0000000042-9f86d081.tail.bad", 42, "0000000042-9f86d081", tailSuffix, true, true},
		{"0000000042-9F86D081.ndjson", 0, "", "", false, false},
		{"0000000042.ndjson.tmp", 0, "", "", false, false},
		{"last-sequence", 0, "", "", false, false},
		{"writer.lock", 0, "", "", false, false},
		{"42.ndjson", 0, "", "", false, false},
		{"abcdefghij.ndjson", 0, "", "", false, false},
	}
	for _, tc := range tests {
		n, ok := parseName(tc.name)
		if n.seq != tc.seq || n.stem != tc.stem || n.suffix != tc.suffix || n.v2 != tc.v2 || ok != tc.ok {
			t.Errorf("parseName(%q) = %+v, %v", tc.name, n, ok)
		}
	}
	stem, err := newStem(42)
	if n, ok := parseName(stem + sealedSuffix); err != nil || !ok || !n.v2 || n.seq != 42 {
		t.Errorf("newStem(42) = %q, %v: does not parse back", stem, err)
	}
}

// A file recovery kept aside is counted by a gauge, so operators can alert on it.
func TestBadFilesAreCounted(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "0000000001"+activeSuffix), []byte(`{"n":1}`+"\n"+`{"n":`), 0o644)
	reg := prometheus.NewRegistry()
	b := mustOpen(t, dir, Options{Registerer: reg})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "sendpilot_buffer_bad_files" {
			if got := mf.GetMetric()[0].GetGauge().GetValue(); got != 1 {
				t.Fatalf("bad files gauge = %v, want 1", got)
			}
			b.Close()
			return
		}
	}
	t.Fatal("sendpilot_buffer_bad_files not registered")
}
