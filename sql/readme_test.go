package sql_test

import (
	"os"
	"strings"
	"testing"

	sqlfiles "sendpilot-loader/sql"
)

// README.md documents every table column (one table row each) and every view, with each of its columns
// (taken from the header of the view's golden rows) named somewhere in backticks.
func TestReadmeDocumentsEverything(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	tables, err := sqlfiles.Tables("bigquery/tables.sql")
	if err != nil {
		t.Fatal(err)
	}
	for table, cols := range tables {
		if !strings.Contains(doc, "### `"+table+"`") {
			t.Errorf("table %s has no section", table)
		}
		for _, c := range cols {
			if !strings.Contains(doc, "| `"+c.Name+"` |") {
				t.Errorf("column %s.%s is not documented", table, c.Name)
			}
		}
	}
	views, err := sqlfiles.Views("bigquery")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		if !strings.Contains(doc, "### `"+v.Name+"`") {
			t.Errorf("view %s has no section", v.Name)
		}
		golden, err := os.ReadFile("sqltest/testdata/golden/view-" + v.Name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		header, _, _ := strings.Cut(string(golden), "\n")
		for _, c := range strings.Split(header, ",") {
			if !strings.Contains(doc, "`"+c+"`") {
				t.Errorf("column %s of view %s is not documented", c, v.Name)
			}
		}
	}
	reports, err := sqlfiles.Reports()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reports {
		if !strings.Contains(doc, "`"+r.Name+"`") {
			t.Errorf("report %s is not listed", r.Name)
		}
	}
}

// The two dialects define the same views, in the same order.
func TestDialectsHaveTheSameViews(t *testing.T) {
	bq, err := sqlfiles.Views("bigquery")
	if err != nil {
		t.Fatal(err)
	}
	dd, err := sqlfiles.Views("duckdb")
	if err != nil {
		t.Fatal(err)
	}
	if len(bq) != len(dd) || len(bq) == 0 {
		t.Fatalf("%d BigQuery views, %d DuckDB views", len(bq), len(dd))
	}
	for i := range bq {
		if bq[i].Name != dd[i].Name || bq[i].Purpose != dd[i].Purpose {
			t.Errorf("view %d: BigQuery %s (%s), DuckDB %s (%s)", i, bq[i].Name, bq[i].Purpose, dd[i].Name, dd[i].Purpose)
		}
	}
}
