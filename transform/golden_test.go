package transform

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
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

// The same input gives byte-identical Parquet files whatever the number of workers, and a .gz input gives the
// same rows as the plain file.
func TestDeterministicOutputAndGzipInput(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile("testdata/all-events.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	var many bytes.Buffer
	for range 50 {
		many.Write(raw)
	}
	plain := filepath.Join(dir, "in.ndjson")
	os.WriteFile(plain, many.Bytes(), 0o644)
	gz := filepath.Join(dir, "in.ndjson.gz")
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(many.Bytes())
	zw.Close()
	os.WriteFile(gz, zb.Bytes(), 0o644)

	run := func(name, input string, workers int) Result {
		res, err := Files(context.Background(), []string{input}, filepath.Join(dir, name), Options{Workers: workers, ChunkBytes: 2 << 10})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	one, four, zipped := run("one", plain, 1), run("four", plain, 4), run("gz", gz, 3)
	for _, table := range Tables {
		a, _ := os.ReadFile(one.Table(table).Path)
		b, _ := os.ReadFile(four.Table(table).Path)
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between 1 and 4 workers", table)
		}
		ra, _ := ReadParquetJSON(one.Table(table).Path)
		rz, _ := ReadParquetJSON(zipped.Table(table).Path)
		ra = bytes.ReplaceAll(ra, []byte(`in.ndjson"`), []byte(`in.ndjson.gz"`))
		if !bytes.Equal(ra, rz) {
			t.Errorf("%s rows differ between the plain and the gzip'd input", table)
		}
	}
	if one.Counts.Events != 50*21 || one.Counts.Quarantined != 50*3 { // the file has 21 events and 3 bad lines
		t.Errorf("counts = %+v, want 1050 events and 150 quarantined", one.Counts)
	}
}

// A .json file may hold an array of events, one pretty-printed event, or several events in a row; a broken
// tail is quarantined, not dropped.
func TestJSONFileInputs(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"array.json":  "[\n" + `{"eventId":"a1","eventType":"message.sent","data":{}},` + "\n" + `{"eventId":"a2","eventType":"lead.updated","data":{}}` + "\n]",
		"pretty.json": "{\n  \"eventId\": \"p1\",\n  \"eventType\": \"campaign.started\",\n  \"data\": {\"campaignName\": \"x\"}\n}\n",
		"stream.json": `{"eventId":"s1","data":{}} {"eventId":"s2","data":{}}`,
		"broken.json": `[{"eventId":"b1","data":{}}, {"eventId": oops}, {"eventId":"b3"}]`,
	}
	var paths []string
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		paths = append(paths, p)
	}
	res, err := Files(context.Background(), paths, filepath.Join(dir, "out"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := ReadParquetJSON(res.Table(TableEvents).Path)
	for _, id := range []string{"a1", "a2", "p1", "s1", "s2", "b1"} {
		if !bytes.Contains(rows, []byte(`"event_id":"`+id+`"`)) {
			t.Errorf("event %s missing", id)
		}
	}
	q, _ := os.ReadFile(res.QuarantinePath)
	if res.Counts.Events != 6 || res.Counts.Quarantined != 1 || !bytes.Contains(q, []byte("oops")) || !bytes.Contains(q, []byte("b3")) {
		t.Errorf("counts %+v, quarantine %s", res.Counts, q)
	}
}

func TestKeepFilters(t *testing.T) {
	out := t.TempDir()
	keep := func(canonical, raw string, occurred int64, ok bool) bool {
		return canonical == "reply.received" && ok && occurred < time.Date(2024, 2, 24, 14, 0, 0, 0, time.UTC).UnixMicro()
	}
	res, err := Files(context.Background(), []string{"testdata/all-events.ndjson"}, out, Options{Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	// reply.received and its old name message.received, at 14:30Z and 13:30Z: only the earlier one is kept.
	rows, _ := ReadParquetJSON(res.Table(TableEvents).Path)
	if res.Counts.Events != 1 || res.Counts.Filtered != 20 || !bytes.Contains(rows, []byte("evt_1708456789123_msgrecv")) {
		t.Errorf("counts %+v, rows %s", res.Counts, rows)
	}
	if res.Table(TableLeads).Rows != 0 {
		t.Errorf("leads of filtered events were written")
	}
}
