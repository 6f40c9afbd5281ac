package emulatortest

import (
	"context"
	"fmt"
	"testing"

	"sendpilot-loader/load/loadtest"
	sqlfiles "sendpilot-loader/sql"
	"sendpilot-loader/sql/sqltest"
)

// Every view and report gives, on BigQuery, the same rows as on DuckDB: both are checked against the same
// golden files, and the funnel and status views against the values computed by hand.
func TestViewsAndReports(t *testing.T) {
	opts, _ := emulator(t)
	w := warehouse(t, opts)
	ctx := context.Background()
	if err := w.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Ensure(ctx); err != nil { // the views are already there: nothing to replace
		t.Fatal(err)
	}
	for i, lines := range sqltest.Batches(t) {
		if _, err := w.Load(ctx, loadtest.BatchFrom(t, fmt.Sprintf("inst-%010d-%010d", i+1, i+1), lines...)); err != nil {
			t.Fatal(err)
		}
	}
	sqltest.Check(t, func(t *testing.T, q string) *sqlfiles.Result {
		res, err := w.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return res
	})
}
