package duckdb

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"sendpilot-loader/load/loadtest"
	sqlfiles "sendpilot-loader/sql"
	"sendpilot-loader/sql/sqltest"
)

// Every view and report gives the golden rows on DuckDB (the emulator test checks BigQuery against the same
// files), and the funnel and status views give the values computed by hand.
func TestViewsAndReports(t *testing.T) {
	ctx := context.Background()
	// Not the default file name: the loader attaches the file, and the reader opens it directly.
	path := filepath.Join(t.TempDir(), "analytics.duckdb")
	w := New(path)
	if err := w.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	for i, lines := range sqltest.Batches(t) {
		if _, err := w.Load(ctx, loadtest.BatchFrom(t, fmt.Sprintf("b%d", i), lines...)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sqltest.Check(t, func(t *testing.T, q string) *sqlfiles.Result {
		res, err := Query(ctx, path, q, QueryOptions{})
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return res
	})
}
