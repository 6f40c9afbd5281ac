package transform

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestLinesReadsWhatTheTransformReads checks that Lines gives each input line with the lineage the transform
// gives it: line numbers counting empty lines, byte ranges from their first line, gzip, .json values, and a
// quarantine record as the line it keeps, at its original place.
func TestLinesReadsWhatTheTransformReads(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := write("a.ndjson", []byte("{\"eventId\":\"a1\"}\n\n{\"eventId\":\"a3\"}\n{\"eventId\":\"a4\"}"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("{\"eventId\":\"g1\"}\n"))
	zw.Close()
	zipped := write("b.ndjson.gz", gz.Bytes())
	array := write("c.json", []byte("[\n {\"eventId\": \"j1\"},\n {\"eventId\": \"j2\"}\n]"))
	q := write("d.ndjson", append(AppendQuarantineRecord(nil, "refused", "buffer/0001.ndjson", 119, []byte(`{"eventId":"q1"}`)), '\n'))
	srcs := []Source{{Path: plain}, {Path: plain, Offset: 18, FirstLine: 3}, {Path: zipped}, {Path: array}, {Path: q}}
	var got []string
	err := Lines(context.Background(), srcs, func(file string, line int64, text []byte) error {
		got = append(got, fmt.Sprintf("%s:%d %s", filepath.Base(file), line, text))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`a.ndjson:1 {"eventId":"a1"}`, `a.ndjson:3 {"eventId":"a3"}`, `a.ndjson:4 {"eventId":"a4"}`,
		`a.ndjson:3 {"eventId":"a3"}`, `a.ndjson:4 {"eventId":"a4"}`,
		`b.ndjson.gz:1 {"eventId":"g1"}`,
		`c.json:1 {"eventId":"j1"}`, `c.json:2 {"eventId":"j2"}`,
		`0001.ndjson:119 {"eventId":"q1"}`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("lines\n got %q\nwant %q", got, want)
	}
	stop := fmt.Errorf("stop")
	n := 0
	if err := Lines(context.Background(), srcs, func(string, int64, []byte) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("an error from fn: Lines returned %v after %d calls, want it after 1", err, n)
	}
}
