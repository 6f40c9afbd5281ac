package duckdb

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"sendpilot-loader/load"
	"sendpilot-loader/load/loadtest"
)

func count(t *testing.T, w *Warehouse, q string) int64 {
	t.Helper()
	var n int64
	if err := w.db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

const (
	evA = `{"eventId":"evt_a","eventType":"message.sent","timestamp":"2024-02-24T10:30:00Z","data":{"leadId":"l1","message":"hi"}}`
	evB = `{"eventId":"evt_b","eventType":"lead_extractor.job.completed","timestamp":"2024-02-24T11:00:00Z","data":{"campaign_id":"c","leads":[{"id":"x","experience":[{"title":"CEO"},{"title":"CTO"}],"education":[{"school":"MIT"}],"skills":["Go","SQL"]},{"id":"y"}]}}`
)

// The same event delivered three times, in two batches and twice inside one, is stored once; so are its
// leads and their children; loading a batch again changes nothing.
func TestLoadIsExactlyOnce(t *testing.T) {
	ctx := context.Background()
	w := New(filepath.Join(t.TempDir(), "warehouse.duckdb"))
	defer w.Close()
	if err := w.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	b1 := loadtest.BatchFrom(t, "b1", evA, evB, evB)
	b2 := loadtest.BatchFrom(t, "b2", evB, `{"eventId":"evt_c","eventType":"never.seen","data":{}}`)
	for _, b := range []load.Batch{b1, b1, b2, b2} {
		if _, err := w.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for q, want := range map[string]int64{
		"SELECT count(*) FROM events":                                                                3,
		"SELECT count(DISTINCT event_id) FROM events":                                                3,
		"SELECT count(*) FROM leads":                                                                 2,
		"SELECT count(*) FROM experience":                                                            2,
		"SELECT count(*) FROM education":                                                             1,
		"SELECT count(*) FROM _sendpilot_batches":                                                    2,
		"SELECT len(skills) FROM leads WHERE lead_id = 'x'":                                          2,
		"SELECT count(*) FROM events WHERE data->>'$.message' = 'hi'":                                1,
		"SELECT count(*) FROM events WHERE event_type = 'unknown' AND event_type_raw = 'never.seen'": 1,
		"SELECT count(*) FROM events WHERE occurred_at = TIMESTAMPTZ '2024-02-24 10:30:00+00'":       1,
	} {
		if got := count(t, w, q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
}

// Close releases the file: another connection (another process, in real life) can then open it.
func TestCloseReleasesTheFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w := New(path)
	if err := w.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	db, err := Open(ctx, path, 0)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
}

// The loader's connection keeps a load's memory bounded: one thread, and rows written out in 16,384-row groups
// as the insert runs instead of held until the commit (DuckDB's default group is 122,880 rows). A batch of
// 40,000 leads must therefore land in several row groups.
func TestLoadWritesSmallRowGroupsWithOneThread(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warehouse.duckdb")
	w := New(path)
	w.MemoryLimit = 128 << 20
	defer w.Close()
	if err := w.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	var leads strings.Builder
	for i := range 40000 {
		if i > 0 {
			leads.WriteByte(',')
		}
		fmt.Fprintf(&leads, `{"id":"l%d","full_name":"Lead %d"}`, i, i)
	}
	ev := `{"eventId":"evt_big","eventType":"lead_database.search.completed","timestamp":"2024-03-01T00:00:00Z","data":{"search_id":"s","leads":[` + leads.String() + `]}}`
	if _, err := w.Load(ctx, loadtest.BatchFrom(t, "big", ev)); err != nil {
		t.Fatal(err)
	}
	var threads, groups int64
	if err := w.db.QueryRow("SELECT current_setting('threads')").Scan(&threads); err != nil || threads != 1 {
		t.Errorf("threads = %d (%v), want 1", threads, err)
	}
	if err := w.db.QueryRow("SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('leads')").Scan(&groups); err != nil || groups < 3 {
		t.Errorf("40,000 leads in %d row groups (%v), want at least 3", groups, err)
	}
}

// DuckDB's error classes decide between isolating events (a value it cannot store, or a batch too big for
// the memory cap: halves fit) and pausing loads (tables that do not match the release).
func TestClassify(t *testing.T) {
	tests := []struct {
		msg               string
		rejected, systemc bool
	}{
		{"insert events: Invalid Input Error: Invalid string encoding found in Parquet file", true, false},
		{"insert events: Conversion Error: Malformed JSON at byte 3 of input: no low surrogate", true, false},
		{"insert leads: Out of Memory Error: could not allocate block of size 256.0 KiB (122.0 MiB/122.0 MiB used)", true, false},
		{"insert events: Binder Error: table events has 47 columns but 48 values were supplied", false, true},
		{"insert events: Catalog Error: Table with name events does not exist!", false, true},
		{"begin load: IO Error: Could not set lock on file", false, false},
	}
	for _, tc := range tests {
		err := classify(errors.New(tc.msg))
		if errors.Is(err, load.ErrRejected) != tc.rejected || errors.Is(err, load.ErrSystemic) != tc.systemc {
			t.Errorf("classify(%q) = %v", tc.msg, err)
		}
	}
}
