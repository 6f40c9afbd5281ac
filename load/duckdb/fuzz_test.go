package duckdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fastjson"

	"sendpilot-loader/load/loadtest"
	sqlfiles "sendpilot-loader/sql"
	"sendpilot-loader/transform"
)

// hostileSeeds are the seed inputs: the transform's hostile corpus (one event a line) and a few of our own.
func hostileSeeds(t testing.TB) []string {
	raw, err := os.ReadFile("../../transform/testdata/hostile.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	seeds := strings.Split(strings.TrimSpace(string(raw)), "\n")
	return append(seeds,
		evA, evB,
		`{"eventId":"f1","data":{"leads":[{"experience":[{},{}],"education":[1,"x",null]},"not an object",{"id":"\ud800"}]}}`,
		`{"eventId":"f2","timestamp":-1,"data":{"acceptedAt":"9999-12-31T23:59:59.9999999Z","leads":[]}}`,
		`{"eventId":"f3","data":"just a string","extra":{"deep":[[[[[[1e-400]]]]]]}}`,
		`{"eventId":"f4","eventType":"message.sent","data":{"message":"`+strings.Repeat("\\u0000", 5000)+`"}}`,
		`{"eventId":"  ","event":"x","data":{"skills":["a"],"leads":[{"skills":["\ud800",1e400,{"a":1}]}]}}`,
		// The zero of Unix time and the zero time.Time are times like any other: a resend must find them.
		`{"eventId":"f5","eventType":"message.sent","timestamp":"1970-01-01T00:00:00Z","data":{"leads":[{"experience":[{}]}]}}`,
		`{"eventId":"f6","eventType":"message.sent","timestamp":"0001-01-01T00:00:00Z","data":{"leads":[{"education":[{}]}]}}`,
	)
}

// expected is what one input must become: one events row, and the leads, experience and education rows its
// data.leads array implies. It is computed with encoding/json, independently of the transform. ok is false
// for an input outside the fuzz target's domain: not a JSON object with a non-empty string eventId (and no
// event_id, its other spelling); shaped like a buffer envelope (v and received_at) or a quarantine record
// (quarantine and line), which the transform reads as such; or nested as deep as fastjson.MaxDepth, which it
// quarantines by design.
type expected struct{ leads, experience, education int64 }

func expect(line []byte) (e expected, ok bool) {
	if !json.Valid(line) || depth(line) >= fastjson.MaxDepth {
		return e, false
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(line, &obj) != nil || obj == nil {
		return e, false
	}
	_, v := obj["v"]
	_, recv := obj["received_at"]
	_, q := obj["quarantine"]
	_, ql := obj["line"]
	_, qb := obj["line_base64"]
	if v && recv || q && (ql || qb) {
		return e, false
	}
	var id string
	if _, dup := obj["event_id"]; dup || json.Unmarshal(obj["eventId"], &id) != nil || id == "" {
		return e, false
	}
	var data map[string]json.RawMessage
	var leads []json.RawMessage
	if json.Unmarshal(obj["data"], &data) != nil || json.Unmarshal(data["leads"], &leads) != nil {
		return e, true
	}
	e.leads = int64(len(leads))
	for _, l := range leads {
		var lead map[string]json.RawMessage
		if json.Unmarshal(l, &lead) != nil {
			continue
		}
		var exp, edu []json.RawMessage
		if json.Unmarshal(lead["experience"], &exp) == nil {
			e.experience += int64(len(exp))
		}
		if json.Unmarshal(lead["education"], &edu) == nil {
			e.education += int64(len(edu))
		}
	}
	return e, true
}

// depth returns how deeply line's arrays and objects nest.
func depth(line []byte) int {
	dec := json.NewDecoder(bytes.NewReader(line))
	d, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) || err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			d++
			deepest = max(deepest, d)
		case json.Delim('}'), json.Delim(']'):
			d--
		}
	}
}

// FuzzLoadOneEvent sends any JSON object with a string eventId through the transform and a real DuckDB load:
// the warehouse must accept the batch, hold exactly one events row for it with its children, and the sql
// command's query path must print every row. Run it for a bounded time with
//
//	go test -run='^$' -fuzz=FuzzLoadOneEvent -fuzztime=30s ./load/duckdb
func FuzzLoadOneEvent(f *testing.F) {
	for _, s := range hostileSeeds(f) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Skip("one event is one line") // newlines between tokens would make it several lines
		}
		want, ok := expect(line)
		if !ok {
			t.Skip("not a JSON object with a string eventId")
		}
		loadOne(t, line, &want)
	})
}

// Every seed, and the size-bound cases too big to be seeds, load as one event with its children; the seeds
// outside the fuzz target's domain (envelopes, a quarantine record, a number for eventId) as one event.
func TestLoadHostileEvents(t *testing.T) {
	lines := hostileSeeds(t)
	lines = append(lines,
		`{"eventId":"huge_text","eventType":"message.sent","data":{"message":"x`+strings.Repeat("é", 3<<19)+`"}}`,
		`{"eventId":"huge_json","eventType":"message.sent","data":{"blob":"`+strings.Repeat("j", 17<<20)+`"}}`,
		`{"eventId":"huge_id`+strings.Repeat("i", 2<<20)+`","data":{}}`,
	)
	for i, line := range lines {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			want, ok := expect([]byte(line))
			if !ok {
				loadOne(t, []byte(line), nil)
				return
			}
			loadOne(t, []byte(line), &want)
		})
	}
}

// fuzzWarehouse is one DuckDB file per test process, emptied after each input: opening a file and creating
// the schema for every input made the fuzz target a hundred times slower. TestMain removes it.
var fuzzWarehouse struct {
	once sync.Once
	dir  string
	w    *Warehouse
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fuzzWarehouse.w != nil {
		fuzzWarehouse.w.Close()
		os.RemoveAll(fuzzWarehouse.dir)
	}
	os.Exit(code)
}

func sharedWarehouse(t *testing.T) *Warehouse {
	t.Helper()
	fw := &fuzzWarehouse
	fw.once.Do(func() {
		if fw.dir, fw.err = os.MkdirTemp("", "duckdb-fuzz-"); fw.err != nil {
			return
		}
		fw.w = New(filepath.Join(fw.dir, "w.duckdb"))
		fw.err = fw.w.Ensure(context.Background())
	})
	if fw.err != nil {
		t.Fatal(fw.err)
	}
	return fw.w
}

// loadOne transforms line into a batch, loads it into the shared DuckDB file and checks that it became one
// events row and, unless want is nil, the child rows want says; that the same line delivered again in another
// batch stores nothing more; and that every row reads back through the sql command's query path and prints
// in every format. It empties the file afterwards.
func loadOne(t *testing.T, line []byte, want *expected) {
	t.Helper()
	ctx := context.Background()
	w := sharedWarehouse(t)
	defer func() {
		for _, table := range append(transform.Tables, "_sendpilot_batches") {
			if _, err := w.db.ExecContext(ctx, "DELETE FROM "+table); err != nil {
				t.Fatal(err)
			}
		}
	}()
	b := loadtest.BatchFrom(t, "fuzz", string(line))
	if _, err := w.Load(ctx, b); err != nil {
		t.Fatalf("the warehouse refused the batch of %.300q: %v", line, err)
	}
	got := expected{
		leads:      count(t, w, "SELECT count(*) FROM leads"),
		experience: count(t, w, "SELECT count(*) FROM experience"),
		education:  count(t, w, "SELECT count(*) FROM education"),
	}
	if events := count(t, w, "SELECT count(*) FROM events"); events != 1 || want != nil && got != *want {
		t.Fatalf("%.300q became %d events and %+v, want 1 and %+v", line, events, got, want)
	}
	again := loadtest.BatchFrom(t, "fuzz-resent", string(line))
	res, err := w.Load(ctx, again)
	if err != nil {
		t.Fatalf("the warehouse refused the resent batch of %.300q: %v", line, err)
	}
	for table, n := range res.Inserted {
		if n != 0 {
			t.Fatalf("%.300q delivered again stored %d more %s rows", line, n, table)
		}
	}
	conn, err := w.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, table := range transform.Tables {
		rows, err := conn.QueryContext(ctx, jsonAsText(ctx, conn, "SELECT * FROM "+table))
		if err != nil {
			t.Fatalf("query %s: %v", table, err)
		}
		res, err := readResult(rows)
		rows.Close()
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		for _, format := range sqlfiles.Formats {
			if err := res.Write(io.Discard, format); err != nil {
				t.Fatalf("print %s as %s: %v", table, format, err)
			}
		}
	}
}
