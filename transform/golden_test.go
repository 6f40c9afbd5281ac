package transform

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden runs the seed payloads, one example of every documented event name, drifted and unknown events,
// buffer envelopes and bad lines through the transform and compares every table and the quarantine output
// with the golden files.
func TestGolden(t *testing.T) {
	out := t.TempDir()
	inputs := []string{"testdata/all-events.ndjson", "testdata/envelopes.ndjson"}
	res, err := Files(context.Background(), inputs, out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range Tables {
		got, err := ReadParquetJSON(res.Table(table).Path)
		if err != nil {
			t.Fatal(err)
		}
		compareGolden(t, table+".jsonl", got)
	}
	q, err := os.ReadFile(res.QuarantinePath)
	if err != nil {
		t.Fatal(err)
	}
	compareGolden(t, "quarantine.ndjson", q)
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./transform -run Golden -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := range max(len(gl), len(wl)) {
			var g, w []byte
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if !bytes.Equal(g, w) {
				t.Fatalf("%s differs at line %d:\n got %s\nwant %s", name, i+1, g, w)
			}
		}
	}
}
