// Package sqltest checks the views and reports of sql/ on a warehouse loaded with a fixture data set: every
// view and report must give the rows in testdata/golden, on every engine, so DuckDB and BigQuery agree with
// each other (a parity test); the funnel and lead status views must also give the values computed by hand
// from the fixture, written out below.
//
// The fixture comes in two batches, loaded in order. Each lead's latest status change is in the first batch
// and its earlier changes in the second, so the current status must come from event time, not arrival.
package sqltest

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	sqlfiles "sendpilot-loader/sql"
)

var update = flag.Bool("update-sql-golden", false, "rewrite sql/sqltest/testdata/golden from this engine's results")

// Run runs one query on the warehouse under test and returns its rows.
type Run func(t *testing.T, query string) *sqlfiles.Result

// dir is this package's directory; the fixture and golden files are read from disk, so the emulator's module
// (which uses this package through a replace directive) reads the same files.
func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Batches returns the fixture's event lines, one slice per batch, in load order.
func Batches(t testing.TB) [][]string {
	t.Helper()
	var out [][]string
	for _, name := range []string{"fixture-1.ndjson", "fixture-2.ndjson"} {
		f, err := os.Open(filepath.Join(dir(), "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		out = append(out, lines)
	}
	return out
}

// viewQueries are the queries that read each view. Rows come back in any order and are sorted before they are
// compared. events_latest is read without its JSON columns, whose text each engine formats its own way.
func viewQueries(t *testing.T) map[string]string {
	views, err := sqlfiles.Views("duckdb")
	if err != nil {
		t.Fatal(err)
	}
	qs := map[string]string{}
	for _, v := range views {
		qs[v.Name] = "SELECT * FROM " + v.Name
	}
	qs["events_latest"] = "SELECT event_id, event_type, event_type_raw, occurred_at, lead_id, campaign_id, sender_id FROM events_latest"
	return qs
}

// Check runs every view and report through run and compares the results with the golden files and the
// hand-computed values. With -update-sql-golden it rewrites the golden files instead.
func Check(t *testing.T, run Run) {
	t.Helper()
	for name, q := range viewQueries(t) {
		t.Run("view/"+name, func(t *testing.T) {
			res := run(t, q)
			slices.SortFunc(res.Rows, func(a, b []any) int { return strings.Compare(fmt.Sprint(a...), fmt.Sprint(b...)) })
			golden(t, "view-"+name, res)
			if want, ok := handComputed[name]; ok {
				checkRows(t, res, want)
			}
		})
	}
	reports, err := sqlfiles.Reports()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reports {
		t.Run("report/"+r.Name, func(t *testing.T) {
			golden(t, "report-"+r.Name, run(t, r.SQL))
		})
	}
}

func golden(t *testing.T, name string, res *sqlfiles.Result) {
	t.Helper()
	var got bytes.Buffer
	if err := res.Write(&got, "json"); err != nil {
		t.Fatal(err)
	}
	header := strings.Join(res.Columns, ",") + "\n"
	path := filepath.Join(dir(), "testdata", "golden", name+".json")
	if *update {
		if err := os.WriteFile(path, []byte(header+got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run the DuckDB test with -update-sql-golden to create it): %v", err)
	}
	if header+got.String() != string(want) {
		t.Errorf("%s differs from %s\ngot:\n%s%s\nwant:\n%s", name, path, header, got.String(), want)
	}
}

// handRow is one expected row: the key columns that find it and the values it must have.
type handRow struct {
	key  map[string]any
	want map[string]any
}

// handComputed holds the values worked out by hand from the fixture; the arithmetic is in the comments.
var handComputed = map[string][]handRow{
	// Week of 2024-03-04, camp_a: leads 1–4 had their first request that week. Lead 1 accepted 24 h after the
	// request (acceptedAt, not the event time) and replied 24 h after the first message; lead 2 accepted 12 h
	// after (no acceptedAt: the event time counts); lead 3 never accepted; lead 4 accepted after 48 h and
	// replied 6 h after its message. Medians: 24 h to accept, (24+6)/2 = 15 h to reply.
	// Week of 2024-03-11, camp_a: lead 5 accepted after 6 h, and lead 6 (already connected, no request)
	// replied 2.5 h after its message; a reply without a lead id is not counted.
	// camp_b: lead 7 accepted after 24 h and replied 24 h after its message; lead 8 did nothing more.
	"campaign_funnel": {
		{key: map[string]any{"campaign_id": "camp_a", "week": "2024-03-04"}, want: map[string]any{
			"campaign_name": "Founders Q1 (EU)", "leads_contacted": 4, "requests_sent": 4, "accepted": 3, "messaged": 3, "replied": 2,
			"acceptance_rate": 0.75, "reply_rate": 0.5, "median_hours_to_accept": 24, "median_hours_to_reply": 15}},
		{key: map[string]any{"campaign_id": "camp_a", "week": "2024-03-11"}, want: map[string]any{
			"leads_contacted": 2, "requests_sent": 1, "accepted": 1, "messaged": 1, "replied": 1,
			"acceptance_rate": 1, "reply_rate": 0.5, "median_hours_to_accept": 6, "median_hours_to_reply": 2.5}},
		{key: map[string]any{"campaign_id": "camp_b", "week": "2024-03-11"}, want: map[string]any{
			"campaign_name": "Agencies", "leads_contacted": 2, "requests_sent": 2, "accepted": 1, "messaged": 1, "replied": 1,
			"acceptance_rate": 0.5, "reply_rate": 0.5, "median_hours_to_accept": 24, "median_hours_to_reply": 24}},
	},
	// Each lead's latest change by event time; every one of them arrived before the earlier changes.
	// Lead 5's last lead.updated has no new status (a field edit) and does not count.
	"lead_status_current": {
		{key: map[string]any{"lead_id": "lead_1"}, want: map[string]any{"status": "OPPORTUNITY", "previous_status": "REPLY_RECEIVED", "status_events": 3}},
		{key: map[string]any{"lead_id": "lead_2"}, want: map[string]any{"status": "NOT_INTERESTED", "status_events": 2}},
		{key: map[string]any{"lead_id": "lead_4"}, want: map[string]any{"status": "DONE", "status_events": 2}},
		{key: map[string]any{"lead_id": "lead_5"}, want: map[string]any{"status": "CONNECTION_ACCEPTED", "changed_by": "automation", "status_events": 1}},
	},
}

func checkRows(t *testing.T, res *sqlfiles.Result, want []handRow) {
	t.Helper()
	col := map[string]int{}
	for i, c := range res.Columns {
		col[c] = i
	}
	if len(res.Rows) != len(want) {
		t.Errorf("%d rows, want %d", len(res.Rows), len(want))
	}
	for _, w := range want {
		var found []any
		for _, row := range res.Rows {
			match := true
			for k, v := range w.key {
				match = match && fmt.Sprint(row[col[k]]) == fmt.Sprint(v)
			}
			if match {
				found = row
			}
		}
		if found == nil {
			t.Errorf("no row with %v", w.key)
			continue
		}
		for k, v := range w.want {
			i, ok := col[k]
			if !ok {
				t.Errorf("no column %s", k)
				continue
			}
			if fmt.Sprint(found[i]) != fmt.Sprint(v) {
				t.Errorf("row %v: %s = %v, want %v", w.key, k, found[i], v)
			}
		}
	}
}
