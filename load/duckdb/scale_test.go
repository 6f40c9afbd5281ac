package duckdb

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"sendpilot-loader/load"
	"sendpilot-loader/load/loadtest"
)

// A table several times larger than DuckDB's memory cap does not stop loads, and a batch's insert reads only
// the stored rows it can collide with: a batch of many leads, one of them a resend of a stored event, loads
// under the smallest cap, stores only the new rows, and its dedup scans a few row groups of the table, not
// the table. The tables are filled in SQL (random event IDs, in time order as loads append them), so the test
// needs no corpus; its size is the bytes of its values, what a plan that held the stored keys would hold.
func TestLoadIntoTableLargerThanMemoryCap(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a table of 250 MB")
	}
	ctx := context.Background()
	w := cappedWarehouse(t)
	const storedEvents, leadsPerEvent = 12000, 50
	fill := fmt.Sprintf(`INSERT INTO leads (event_id, lead_index, event_type, occurred_at, lead_id, full_name, headline, lead)
SELECT md5((i // %[2]d)::VARCHAR), i %% %[2]d, 'lead_extractor.job.completed',
       TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds((i // %[2]d) * 60),
       'l' || i, 'Name ' || i, repeat('h', 150), '{"id":"l' || i || '","about":"' || repeat('a', 200) || '"}'
FROM range(%[1]d) t(i)`, storedEvents*leadsPerEvent, leadsPerEvent)
	if _, err := w.db.ExecContext(ctx, fill); err != nil {
		t.Fatalf("fill leads: %v", err)
	}
	events := fmt.Sprintf(`INSERT INTO events (event_id, event_type, event_type_raw, occurred_at, source_file, source_line)
SELECT md5(i::VARCHAR), 'lead_extractor.job.completed', 'lead_extractor.job.completed',
       TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(i * 60), 'seed.ndjson', i + 1
FROM range(%d) t(i)`, storedEvents)
	if _, err := w.db.ExecContext(ctx, events); err != nil {
		t.Fatalf("fill events: %v", err)
	}
	var raw int64
	if err := w.db.QueryRowContext(ctx, `SELECT sum(strlen(event_id) + strlen(headline) + strlen(lead::VARCHAR)) FROM leads`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if raw < 3*w.MemoryLimit {
		t.Fatalf("the table holds %d bytes of values, want several times the %d-byte cap", raw, w.MemoryLimit)
	}

	// The batch: 60 new jobs of 500 leads a day after the stored ones, and a resend of the last stored event
	// (same eventId, same time: 2024-01-01 + 11,999 minutes).
	var lines []string
	lead := `{"id":"l%d","firstName":"F","lastName":"L","headline":"%s","experience":[{"title":"T","company":"C"}]}`
	for j := range 60 {
		var leads []string
		for k := range 500 {
			leads = append(leads, fmt.Sprintf(lead, k, strings.Repeat("h", 200)))
		}
		lines = append(lines, fmt.Sprintf(`{"eventId":"new_%d","eventType":"lead_extractor.job.completed","timestamp":"2024-01-10T00:%02d:00Z","data":{"campaign_id":"c","leads":[%s]}}`,
			j, j, strings.Join(leads, ",")))
	}
	var resent string
	if err := w.db.QueryRowContext(ctx, `SELECT md5('11999')`).Scan(&resent); err != nil {
		t.Fatal(err)
	}
	lines = append(lines, fmt.Sprintf(`{"eventId":%q,"eventType":"lead_extractor.job.completed","timestamp":"2024-01-09T07:59:00Z","data":{"leads":[{"id":"again"},{"id":"again2"}]}}`, resent))
	b := loadtest.BatchFrom(t, "big", lines...)

	if scanned := storedRowsScanned(t, w, b); scanned > int64(storedEvents*leadsPerEvent)/20 {
		t.Errorf("inserting the batch's leads scanned %d stored rows of %d: the stored side is not pruned", scanned, storedEvents*leadsPerEvent)
	}
	res, err := w.Load(ctx, b)
	if err != nil {
		t.Fatalf("load into a table of %d bytes under a %d-byte cap: %v", raw, w.MemoryLimit, err)
	}
	if got, want := res.Inserted["leads"], int64(60*500); got != want {
		t.Fatalf("inserted %d leads, want %d (the resent event's leads are stored already)", got, want)
	}
	if got := count(t, w, fmt.Sprintf(`SELECT count(*) FROM leads WHERE event_id = '%s' AND lead_id LIKE 'again%%'`, resent)); got != 0 {
		t.Fatalf("the resent event's leads were stored again: %d", got)
	}
}

// storedRowsScanned chooses, under DuckDB's profiler and in a transaction it rolls back, which of b's leads to
// insert (keepSQL), and returns how many rows its scans of the stored leads table read.
func storedRowsScanned(t *testing.T, w *Warehouse, b load.Batch) int64 {
	t.Helper()
	ctx := context.Background()
	profile := filepath.Join(t.TempDir(), "profile.json")
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	settings := fmt.Sprintf(`PRAGMA enable_profiling = 'json'; PRAGMA profiling_output = %s;
SET custom_profiling_settings = '{"OPERATOR_ROWS_SCANNED": "true", "EXTRA_INFO": "true"}'`, quote(profile))
	if _, err := tx.ExecContext(ctx, settings); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT count(*) FROM ("+keepSQL("leads", b.Files["leads"], b)+")"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `PRAGMA disable_profiling`); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	type node struct {
		Type     string         `json:"operator_type"`
		Scanned  int64          `json:"operator_rows_scanned"`
		Extra    map[string]any `json:"extra_info"`
		Children []node         `json:"children"`
	}
	var root node
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatalf("read profile: %v", err)
	}
	var sum func(node) (int64, int)
	sum = func(n node) (int64, int) {
		var rows int64
		var scans int
		if n.Type == "TABLE_SCAN" && strings.HasSuffix(fmt.Sprint(n.Extra["Table"]), ".leads") {
			rows, scans = n.Scanned, 1
		}
		for _, c := range n.Children {
			r, s := sum(c)
			rows, scans = rows+r, scans+s
		}
		return rows, scans
	}
	rows, scans := sum(root)
	if scans == 0 {
		t.Fatalf("the profile has no scan of the stored leads table:\n%s", raw)
	}
	return rows
}

// A batch whose every row is stored already (a backfill of history the warehouse holds, or a replayed
// archive) loads under the smallest cap and inserts nothing, however wide its rows: the dedup decides which
// rows to insert from the key columns alone. This test guards the behaviour; the plan that built its hash
// table on the batch's whole rows passed it too, and ran out of memory only on a 250 MB batch against a
// 5 GB warehouse (bench/scale's warehouse, backfilled again: README, "Backfill").
func TestResendLargerThanMemoryCap(t *testing.T) {
	if testing.Short() {
		t.Skip("loads a batch of 100 MB twice")
	}
	ctx := context.Background()
	w := cappedWarehouse(t)
	var lines []string
	lead := `{"id":"l%d","firstName":"F","lastName":"L","headline":"%s","summary":"%s"}`
	for j := range 200 {
		var leads []string
		for k := range 500 {
			leads = append(leads, fmt.Sprintf(lead, k, strings.Repeat("h", 200), strings.Repeat(fmt.Sprint(j*k), 100)))
		}
		lines = append(lines, fmt.Sprintf(`{"eventId":"job_%d","eventType":"lead_extractor.job.completed","timestamp":"2024-01-10T%02d:%02d:00Z","data":{"campaign_id":"c","leads":[%s]}}`,
			j, j/60, j%60, strings.Join(leads, ",")))
	}
	first := loadtest.BatchFrom(t, "first", lines...)
	if _, err := w.Load(ctx, first); err != nil {
		t.Fatalf("first load: %v", err)
	}
	again := loadtest.BatchFrom(t, "again", lines...)
	res, err := w.Load(ctx, again)
	if err != nil {
		t.Fatalf("load a resend of %d leads under a %d-byte cap: %v", again.Rows["leads"], w.MemoryLimit, err)
	}
	for table, n := range res.Inserted {
		if n != 0 {
			t.Errorf("the resend stored %d more %s rows", n, table)
		}
	}
}

// cappedWarehouse is a new warehouse file with its tables, loaded under the smallest memory cap (64 MiB).
func cappedWarehouse(t *testing.T) *Warehouse {
	t.Helper()
	w := New(filepath.Join(t.TempDir(), "warehouse.duckdb"))
	w.MemoryLimit = 64 << 20
	t.Cleanup(func() { w.Close() })
	if err := w.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}

// While a load holds the file open, DuckDB's cap comes out of the Go heap's soft limit, so the process stays
// within memory_limit; closing the file gives it back.
func TestLoadMemoryComesOutOfTheGoLimit(t *testing.T) {
	const budget = 256 << 20
	before := debug.SetMemoryLimit(budget)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	w := cappedWarehouse(t) // open: Ensure ran
	if got, want := debug.SetMemoryLimit(-1), int64(budget-w.MemoryLimit); got != want {
		t.Errorf("Go's soft limit with the warehouse open = %d, want the budget less DuckDB's cap, %d", got, want)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != budget {
		t.Errorf("Go's soft limit after close = %d, want the budget %d", got, budget)
	}
}
