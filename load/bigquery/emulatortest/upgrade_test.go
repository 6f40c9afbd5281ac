package emulatortest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	bq "cloud.google.com/go/bigquery"
	"google.golang.org/api/option"

	"sendpilot-loader/load"
	"sendpilot-loader/load/bigquery"
	"sendpilot-loader/load/loadtest"
	sqlfiles "sendpilot-loader/sql"
	"sendpilot-loader/transform"
)

// extraColumn is the column a later release adds to events in these tests.
const extraColumn = "test_extra"

// release returns a warehouse writing the given columns as schema version v.
func release(t *testing.T, opts []option.ClientOption, tables map[string][]sqlfiles.Column, v int) *bigquery.Warehouse {
	t.Helper()
	w, err := bigquery.New(context.Background(), bigquery.Config{Project: project, Dataset: dataset, SingleRequestUpload: true, Tables: tables, Version: v}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// schemas returns the columns of schema version 1 and those of the next release: the current schema plus
// extraColumn in events, and that release's version.
func schemas(t *testing.T) (v1, next map[string][]sqlfiles.Column, nextVersion int) {
	t.Helper()
	v1, err := sqlfiles.Tables(sqlfiles.VersionPath("bigquery", 1))
	if err != nil {
		t.Fatal(err)
	}
	next, err = sqlfiles.Tables("bigquery/tables.sql")
	if err != nil {
		t.Fatal(err)
	}
	next[transform.TableEvents] = append(slices.Clone(next[transform.TableEvents]), sqlfiles.Column{Name: extraColumn, Type: "STRING"})
	current, err := sqlfiles.Version("bigquery")
	if err != nil {
		t.Fatal(err)
	}
	return v1, next, current + 1
}

func wideBatch(t *testing.T, id, prefix string, replace bool, lines ...string) load.Batch {
	b := loadtest.BatchFrom(t, id, lines...)
	loadtest.Widen(t, b, transform.TableEvents, extraColumn, func(e string) string { return prefix + e })
	b.Replace = replace
	return b
}

const evBShrunk = `{"eventId":"evt_b","eventType":"lead_extractor.job.completed","timestamp":"2024-02-25T11:00:00Z","data":{"campaign_id":"c2","leads":[{"id":"x"}]}}`

// A dataset created and loaded by the release of schema version 1 takes a load from a release with one more
// column: the column is appended, old rows keep their values, new rows carry it; a replace of the old input
// fills it for the old rows without adding a row, and drops the children a shrunk lead list no longer has.
func TestUpgradeFromV1(t *testing.T) {
	direct, endpoint := emulator(t)
	opts := (&schemaProxy{direct: direct}).start(t, endpoint)
	ctx := context.Background()
	v1, next, nextVersion := schemas(t)

	old := release(t, opts, v1, 1)
	if err := old.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Load(ctx, loadtest.BatchFrom(t, "old-0000000001-0000000001", evA, evB)); err != nil {
		t.Fatal(err)
	}
	w := release(t, opts, next, nextVersion)
	if err := w.Ensure(ctx); err != nil {
		t.Fatalf("ensure after upgrade: %v", err)
	}
	if _, err := w.Load(ctx, wideBatch(t, "new-0000000002-0000000002", "new:", false, evC)); err != nil {
		t.Fatalf("load after upgrade: %v", err)
	}
	expect(t, direct, "after upgrade", map[string]string{
		"SELECT COUNT(*) FROM sendpilot.events":                                            "3",
		"SELECT COUNT(*) FROM sendpilot.events WHERE test_extra IS NULL":                   "2",
		"SELECT COUNT(*) FROM sendpilot.events WHERE test_extra = 'new:evt_c'":             "1",
		"SELECT COUNT(*) FROM sendpilot.events WHERE JSON_VALUE(data, '$.message') = 'hi'": "1",
		"SELECT COUNT(*) FROM sendpilot.leads":                                             "2",
		"SELECT COUNT(*) FROM sendpilot.experience":                                        "2",
		"SELECT COUNT(*) FROM sendpilot.events_latest WHERE test_extra = 'new:evt_c'":      "1",
	})
	for _, id := range []string{"re1-0000000003-0000000003", "re2-0000000003-0000000003"} {
		if _, err := w.Load(ctx, wideBatch(t, id, "re:", true, evA, evB)); err != nil {
			t.Fatalf("replace %s: %v", id, err)
		}
	}
	expect(t, direct, "after replace", map[string]string{
		"SELECT COUNT(*) FROM sendpilot.events":                                "3",
		"SELECT COUNT(DISTINCT event_id) FROM sendpilot.events":                "3",
		"SELECT COUNT(*) FROM sendpilot.events WHERE test_extra LIKE 're:%'":   "2",
		"SELECT COUNT(*) FROM sendpilot.events WHERE test_extra = 'new:evt_c'": "1",
		"SELECT COUNT(*) FROM sendpilot.leads":                                 "2",
		"SELECT COUNT(*) FROM sendpilot.experience":                            "2",
		"SELECT COUNT(*) FROM sendpilot.education":                             "1",
	})
	if _, err := w.Load(ctx, wideBatch(t, "re3-0000000004-0000000004", "re:", true, evBShrunk)); err != nil {
		t.Fatal(err)
	}
	expect(t, direct, "after replacing a shrunk lead list", map[string]string{
		"SELECT COUNT(*) FROM sendpilot.events":                               "3",
		"SELECT COUNT(*) FROM sendpilot.events WHERE job_id = 'c2'":           "1",
		"SELECT COUNT(*) FROM sendpilot.leads WHERE event_id = 'evt_b'":       "1",
		"SELECT COUNT(*) FROM sendpilot.experience WHERE event_id = 'evt_b'":  "0",
		"SELECT COUNT(*) FROM sendpilot.education WHERE event_id = 'evt_b'":   "0",
		"SELECT COUNT(*) FROM sendpilot.events WHERE test_extra = 're:evt_a'": "1",
	})
}

func expect(t *testing.T, opts []option.ClientOption, when string, checks map[string]string) {
	t.Helper()
	for q, want := range checks {
		if row := query(t, opts, q); len(row) != 1 || fmt.Sprint(row[0]) != want {
			t.Errorf("%s: %s = %v, want %s", when, q, row, want)
		}
	}
}

// rebuild replaces a table by the result of a query over it, as an operator's CREATE OR REPLACE TABLE would.
func rebuild(t *testing.T, opts []option.ClientOption, table, selectList string) {
	t.Helper()
	ctx := context.Background()
	c, err := bq.NewClient(ctx, project, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run := func(q string) {
		if err := runQuery(ctx, c, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	before, err := c.Dataset(dataset).Table(table).Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	run("CREATE TABLE sendpilot._rebuild AS SELECT " + selectList + " FROM sendpilot." + table)
	if err := c.Dataset(dataset).Table(table).Delete(ctx); err != nil {
		t.Fatal(err)
	}
	run("CREATE TABLE sendpilot." + table + " PARTITION BY DATE(occurred_at) AS SELECT * FROM sendpilot._rebuild")
	if err := c.Dataset(dataset).Table("_rebuild").Delete(ctx); err != nil {
		t.Fatal(err)
	}
	// A table built by a query has no REQUIRED column; keep the modes the columns had, as ALTER TABLE does.
	after, err := c.Dataset(dataset).Table(table).Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	required := map[string]bool{}
	for _, f := range before.Schema {
		required[f.Name] = f.Required
	}
	for _, f := range after.Schema {
		f.Required = required[f.Name]
	}
	if _, err := c.Dataset(dataset).Table(table).Update(ctx, bq.TableMetadataToUpdate{Schema: after.Schema}, ""); err != nil {
		t.Fatal(err)
	}
}

// A column whose type changed in the dataset cannot be migrated: Ensure and Load return a
// *load.SchemaDifference (systemic, never rejected) saying what differs and what to run, and merge nothing;
// once the column is dropped (here by rebuilding the table without it: the emulator ignores ALTER TABLE), the
// loader adds it back and the same batch loads.
func TestUnmigratableDifferencePausesLoads(t *testing.T) {
	direct, endpoint := emulator(t)
	opts := (&schemaProxy{direct: direct}).start(t, endpoint)
	ctx := context.Background()
	w, err := bigquery.New(ctx, bigquery.Config{Project: project, Dataset: dataset, SingleRequestUpload: true}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Load(ctx, loadtest.BatchFrom(t, "inst-0000000001-0000000001", evA)); err != nil {
		t.Fatal(err)
	}
	rebuild(t, direct, "events", "* REPLACE (CAST(sequence_step AS STRING) AS sequence_step)")

	const (
		what = "`sendpilot.events`.sequence_step is STRING in the warehouse but this release writes INT64"
		fix  = "ALTER TABLE `sendpilot.events` DROP COLUMN sequence_step"
	)
	check := func(step string, err error) {
		t.Helper()
		var diff *load.SchemaDifference
		if !errors.Is(err, load.ErrSystemic) || errors.Is(err, load.ErrRejected) || !errors.As(err, &diff) {
			t.Fatalf("%s with a changed column type: %v, want a systemic schema difference", step, err)
		}
		for _, want := range []string{what, fix} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: message %q lacks %q", step, err, want)
			}
		}
	}
	b := loadtest.BatchFrom(t, "inst-0000000002-0000000002", evB)
	check("ensure", w.Ensure(ctx))
	_, err = w.Load(ctx, b)
	check("load", err)
	expect(t, direct, "after a paused load", map[string]string{"SELECT COUNT(*) FROM sendpilot.events": "1", "SELECT COUNT(*) FROM sendpilot.leads": "0"})

	rebuild(t, direct, "events", "* EXCEPT (sequence_step)")
	if err := w.Ensure(ctx); err != nil {
		t.Fatalf("ensure after the fix: %v", err)
	}
	if _, err := w.Load(ctx, b); err != nil {
		t.Fatalf("load after the fix: %v", err)
	}
	expect(t, direct, "after the fix", map[string]string{"SELECT COUNT(*) FROM sendpilot.events": "2", "SELECT COUNT(*) FROM sendpilot.leads": "2"})
}
