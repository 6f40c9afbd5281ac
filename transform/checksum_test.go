package transform

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"sendpilot-loader/internal/record"
)

// Buffer format v2 lines carry a checksum: intact ones load like v1 lines, and one whose bytes changed on
// disk goes to quarantine with its location, never into a table.
func TestChecksummedRecords(t *testing.T) {
	envelope := func(id string) []byte {
		return []byte(`{"v":1,"received_at":"2026-01-01T00:00:00Z","signature":"valid","event_id":"` + id +
			`","payload":{"eventId":"` + id + `","eventType":"message.sent","data":{"message":"hi"}}}`)
	}
	var seg []byte
	seg = append(record.Append(seg, envelope("ok1")), '\n')
	bad := record.Append(nil, envelope("bad1"))
	bad[bytes.Index(bad, []byte("hi"))] = 'H' // one changed character inside a string: still valid JSON
	seg = append(append(seg, bad...), '\n')
	seg = append(append(seg, envelope("v1line")...), '\n') // a line from before checksums
	dir := t.TempDir()
	in := filepath.Join(dir, "0000000001-0badf00d.ndjson")
	if err := os.WriteFile(in, seg, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Files(context.Background(), []string{in}, filepath.Join(dir, "out"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := ReadParquetJSON(res.Table(TableEvents).Path)
	if res.Counts.Events != 2 || !bytes.Contains(rows, []byte(`"ok1"`)) || !bytes.Contains(rows, []byte(`"v1line"`)) || bytes.Contains(rows, []byte(`"bad1"`)) {
		t.Fatalf("counts %+v, events %s", res.Counts, rows)
	}
	if bytes.Contains(rows, []byte(record.Key)) {
		t.Errorf("the checksum key reached a table: %s", rows)
	}
	q, _ := os.ReadFile(res.QuarantinePath)
	for _, want := range []string{"checksum mismatch", `"source_line":2`, in, "bad1"} {
		if !bytes.Contains(q, []byte(want)) {
			t.Errorf("quarantine lacks %q: %s", want, q)
		}
	}
}
