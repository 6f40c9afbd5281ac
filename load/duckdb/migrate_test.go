package duckdb

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sendpilot-loader/load"
	"sendpilot-loader/load/loadtest"
	sqlfiles "sendpilot-loader/sql"
	"sendpilot-loader/transform"
)

// releaseV1 returns the warehouse as schema version 1's release made and loaded it: the file created from
// sql/duckdb/v1/tables.sql, and a warehouse writing v1's columns.
func releaseV1(t *testing.T, path string) *Warehouse {
	t.Helper()
	execFile(t, path, readFile(t, sqlfiles.VersionPath("duckdb", 1)))
	v1, err := sqlfiles.Tables(sqlfiles.VersionPath("duckdb", 1))
	if err != nil {
		t.Fatal(err)
	}
	w := New(path)
	w.tables, w.version = v1, 1
	return w
}

// extraColumn is the column a later release adds to events in these tests.
const extraColumn = "test_extra"

// nextRelease returns a warehouse writing the current schema plus extraColumn in events, as the next release
// that types one more field would.
func nextRelease(path string) *Warehouse {
	w := New(path)
	w.tables = map[string][]sqlfiles.Column{}
	for t, cols := range currentTables {
		w.tables[t] = slices.Clone(cols)
	}
	w.tables[transform.TableEvents] = append(w.tables[transform.TableEvents], sqlfiles.Column{Name: extraColumn, Type: "VARCHAR"})
	w.version = currentVersion + 1
	return w
}

// wide is a batch of the next release: the extra column holds prefix + event_id.
func wide(t *testing.T, id, prefix string, replace bool, lines ...string) load.Batch {
	b := loadtest.BatchFrom(t, id, lines...)
	loadtest.Widen(t, b, transform.TableEvents, extraColumn, func(e string) string { return prefix + e })
	b.Replace = replace
	return b
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	raw, err := sqlfiles.Files.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// execFile runs statements on the file the way an operator would, outside the loader.
func execFile(t *testing.T, path, statements string) {
	t.Helper()
	db, err := Open(context.Background(), path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(statements); err != nil {
		t.Fatalf("%s: %v", statements, err)
	}
}

func text(t *testing.T, w *Warehouse, q string) string {
	t.Helper()
	var s string
	if err := w.db.QueryRow(q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

const evBShrunk = `{"eventId":"evt_b","eventType":"lead_extractor.job.completed","timestamp":"2024-02-24T11:00:00Z","data":{"campaign_id":"c2","leads":[{"id":"x"}]}}`

// A warehouse created and loaded by the release of schema version 1 takes a load from a release with one more
// column: the column is added, old rows keep every value, new rows carry the column, and a replace of the old
// input fills it for the old rows without adding one.
func TestUpgradeFromV1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warehouse.duckdb")
	old := releaseV1(t, path)
	if err := old.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Load(ctx, loadtest.BatchFrom(t, "old", evA, evB)); err != nil {
		t.Fatal(err)
	}
	// Every stored value of the old rows, in the old columns.
	snapshot := func(w *Warehouse) string {
		return text(t, w, `SELECT string_agg(CAST(e AS VARCHAR), '|' ORDER BY event_id) FROM (SELECT `+old.columnList("events")+` FROM events WHERE event_id IN ('evt_a', 'evt_b')) e`)
	}
	before := snapshot(old)
	old.Close()

	w := nextRelease(path)
	defer w.Close()
	if err := w.Ensure(ctx); err != nil {
		t.Fatalf("ensure after upgrade: %v", err)
	}
	if _, err := w.Load(ctx, wide(t, "new", "new:", false, `{"eventId":"evt_c","eventType":"never.seen","data":{}}`)); err != nil {
		t.Fatalf("load after upgrade: %v", err)
	}
	if after := snapshot(w); after != before {
		t.Errorf("old rows changed by the upgrade:\nbefore %s\nafter  %s", before, after)
	}
	checks := map[string]int64{
		"SELECT count(*) FROM events":                                                         3,
		"SELECT count(*) FROM events WHERE test_extra IS NULL":                                2,
		"SELECT count(*) FROM events WHERE test_extra = 'new:evt_c'":                          1,
		"SELECT count(*) FROM events_latest WHERE test_extra = 'new:evt_c'":                   1, // the view was recreated
		"SELECT max(version) FROM _sendpilot_schema":                                          int64(currentVersion + 1),
		"SELECT count(*) FROM _sendpilot_schema WHERE changes LIKE '%add events.test_extra%'": 1,
	}
	for q, want := range checks {
		if got := count(t, w, q); got != want {
			t.Errorf("after upgrade: %s = %d, want %d", q, got, want)
		}
	}

	// Replace the old input with the new release's rows, twice (idempotent), under two batch IDs.
	for _, id := range []string{"replace-1", "replace-2"} {
		res, err := w.Load(ctx, wide(t, id, "re:", true, evA, evB))
		if err != nil {
			t.Fatal(err)
		}
		if res.Replaced["events"] != 2 || res.Inserted["events"] != 2 {
			t.Errorf("%s: replaced %v, inserted %v; want 2 events each", id, res.Replaced, res.Inserted)
		}
	}
	for q, want := range map[string]int64{
		"SELECT count(*) FROM events":                                 3,
		"SELECT count(DISTINCT event_id) FROM events":                 3,
		"SELECT count(*) FROM events WHERE test_extra LIKE 're:%'":    2,
		"SELECT count(*) FROM events WHERE test_extra = 're:evt_a'":   1,
		"SELECT count(*) FROM events WHERE test_extra = 'new:evt_c'":  1,
		"SELECT count(*) FROM leads":                                  2,
		"SELECT count(DISTINCT (event_id, lead_index)) FROM leads":    2,
		"SELECT count(*) FROM experience":                             2,
		"SELECT count(*) FROM education":                              1,
		"SELECT count(*) FROM events WHERE data->>'$.message' = 'hi'": 1,
	} {
		if got := count(t, w, q); got != want {
			t.Errorf("after replace: %s = %d, want %d", q, got, want)
		}
	}

	// A lead list that shrank leaves no stale leads, experience or education.
	if _, err := w.Load(ctx, wide(t, "replace-3", "re:", true, evBShrunk)); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int64{
		"SELECT count(*) FROM events":                               3,
		"SELECT count(*) FROM events WHERE job_id = 'c2'":           1,
		"SELECT count(*) FROM leads WHERE event_id = 'evt_b'":       1,
		"SELECT count(*) FROM experience WHERE event_id = 'evt_b'":  0,
		"SELECT count(*) FROM education WHERE event_id = 'evt_b'":   0,
		"SELECT count(*) FROM events WHERE test_extra = 're:evt_a'": 1, // not in the batch: untouched
	} {
		if got := count(t, w, q); got != want {
			t.Errorf("after replacing a shrunk lead list: %s = %d, want %d", q, got, want)
		}
	}
}

// A column whose type changed in the warehouse cannot be migrated: Ensure and Load return a
// *load.SchemaDifference (systemic, never rejected) saying what differs and what to run, and store nothing;
// once the operator runs the suggested statement, the same batch loads.
func TestUnmigratableDifferencePausesLoads(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warehouse.duckdb")
	w := New(path)
	defer w.Close()
	if err := w.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Load(ctx, loadtest.BatchFrom(t, "b1", evA)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	execFile(t, path, "ALTER TABLE events ALTER COLUMN sequence_step TYPE VARCHAR")

	const (
		what = "events.sequence_step is VARCHAR in the warehouse but this release writes BIGINT"
		fix  = "ALTER TABLE events DROP COLUMN sequence_step"
	)
	b2 := loadtest.BatchFrom(t, "b2", evB)
	check := func(step string, err error) {
		t.Helper()
		var diff *load.SchemaDifference
		if !errors.Is(err, load.ErrSystemic) || errors.Is(err, load.ErrRejected) || !errors.As(err, &diff) {
			t.Fatalf("%s with a changed column type: %v, want a systemic schema difference", step, err)
		}
		for _, want := range []string{what, fix, "Loads are paused and every segment stays in buffer/"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: message %q lacks %q", step, err, want)
			}
		}
	}
	check("ensure", w.Ensure(ctx))
	_, err := w.Load(ctx, b2)
	check("load", err)
	if got := count(t, w, "SELECT count(*) FROM events"); got != 1 {
		t.Errorf("events after a paused load: %d, want 1", got)
	}
	w.Close()

	execFile(t, path, fix)
	if err := w.Ensure(ctx); err != nil {
		t.Fatalf("ensure after the fix: %v", err)
	}
	if _, err := w.Load(ctx, b2); err != nil {
		t.Fatalf("load after the fix: %v", err)
	}
	for q, want := range map[string]int64{
		"SELECT count(*) FROM events": 2,
		"SELECT count(*) FROM leads":  2,
		"SELECT count(*) FROM duckdb_columns() WHERE table_name = 'events' AND column_name = 'sequence_step' AND data_type = 'BIGINT'": 1,
	} {
		if got := count(t, w, q); got != want {
			t.Errorf("after the fix: %s = %d, want %d", q, got, want)
		}
	}
}

// A file migrated by a newer release (a higher schema version) pauses an older release's loads.
func TestNewerSchemaVersionPausesLoads(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warehouse.duckdb")
	next := nextRelease(path)
	if err := next.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	next.Close()
	w := New(path)
	defer w.Close()
	err := w.Ensure(ctx)
	if !errors.Is(err, load.ErrSystemic) || !strings.Contains(err.Error(), "this release knows versions up to") {
		t.Fatalf("ensure on a newer schema: %v", err)
	}
}
