package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sendpilot-loader/bench/corpus"
	"sendpilot-loader/transform"
)

// edgeLeads are leads on which the DuckDB plan must write what transform.Files writes, one event each: every
// case of transform's rest_test.go that the plan matches, and more spellings, types and child elements. The
// cases the plan's top comment lists as differences are left out.
var edgeLeads = []string{
	`{"id":"l1","first_name":"Ann","headline":"CTO","x":1}`,
	`{"first_name":"Ann","firstName":"Ann"}`,
	`{"first_name":null,"firstName":"Bo","lastName":"C","last_name":null}`,
	`{"first_name":42,"phone":"+1","email":true}`,
	`{"company":{"name":"A"},"company_name":"B"}`,
	`{"email":null}`,
	`{"first_name":""}`,
	`{"summary":"a\u00e9\n\"q\"","about":"b"}`,
	`{"connections":500,"followers":-7}`,
	`{"connections":"500","followers":5e2,"follower_count":1.0}`,
	`{"connectionCount":"abc","connections":5,"connection_count":6}`,
	`{"connections":18446744073709551615,"connectionCount":3}`,
	`{"skills":["Go","SQL"]}`,
	`{"skills":["Go",1]}`,
	`{"skills":["Go",null]}`,
	`{"skills":[]}`,
	`{"skills":{"a":"Go"}}`,
	`{"experience":[{"title":"Dev","company":"A","team":"core"},3,null],"education":[]}`,
	`{"experience":null,"education":null,"skills":null}`,
	`{"experience":[{"position":"P","title":null,"startDate":"2021","end":"now","description":"d","duration":1}]}`,
	`{"education":[{"school":"S","school_name":"S2","degree":1,"field":"f","start":"2020","end":null},{"institution":{"a":1}}]}`,
	`{}`,
	`null`,
}

// TestDuckDBPlanMatchesTransform checks that the DuckDB plan writes the four tables of transform.Files value
// for value and in order, on a small corpus and on edgeLeads: the JSON columns leave out the same keys.
func TestDuckDBPlanMatchesTransform(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "in.ndjson")
	var b bytes.Buffer
	if _, _, err := corpus.Write(&b, corpus.NewShape(1, false, corpus.ShapeDefault), 1<<20); err != nil {
		t.Fatal(err)
	}
	for i, lead := range edgeLeads {
		fmt.Fprintf(&b, `{"eventId":"edge_%d","eventType":"lead_extractor.job.completed","timestamp":"2024-02-24T10:30:00Z","data":{"campaign_id":"job_1","leads":[%s]}}`+"\n", i, lead)
	}
	if err := os.WriteFile(input, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ours, duck := filepath.Join(dir, "ours"), filepath.Join(dir, "duckdb")
	if _, err := transform.Files(ctx, []string{input}, ours, transform.Options{Workers: 2}); err != nil {
		t.Fatal(err)
	}
	if err := runDuckDB(ctx, input, duck, 2); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	counts, err := countRows(ctx, db, ours, transform.Tables)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(counts, 0) {
		t.Fatalf("rows %v: every table needs rows for the comparison to mean anything", counts)
	}
	for _, table := range transform.Tables {
		oursPath, duckPath := filepath.Join(ours, table+".parquet"), filepath.Join(duck, table+".parquet")
		cols, duckCols := columnNames(t, db, oursPath), columnNames(t, db, duckPath)
		if !slices.Equal(cols, duckCols) {
			t.Errorf("%s columns\n ours   %v\n duckdb %v", table, cols, duckCols)
			continue
		}
		for _, c := range cols {
			if diffs := differingRows(t, db, oursPath, duckPath, c); len(diffs) > 0 {
				t.Errorf("%s.%s differs in %d rows, first (ours, duckdb): %s", table, c, len(diffs), diffs[0])
			}
		}
	}
}

// jsonColumns are the columns compared as JSON values: text that differs only in formatting is equal.
var jsonColumns = map[string]bool{"data": true, "extra": true, "lead": true, "element": true}

// columnNames returns the columns of a Parquet file, in order.
func columnNames(t *testing.T, db *sql.DB, path string) []string {
	t.Helper()
	return queryStrings(t, db, "SELECT column_name FROM (DESCRIBE SELECT * FROM read_parquet("+sqlString(path)+"))")
}

// differingRows returns the rows (by position) where column col of the two Parquet files differs, each as
// "ours | duckdb" text; a row present in one file only differs too.
func differingRows(t *testing.T, db *sql.DB, a, b, col string) []string {
	t.Helper()
	va, vb := "a."+sqlIdent(col), "b."+sqlIdent(col)
	if jsonColumns[col] {
		va, vb = "json("+va+")", "json("+vb+")"
	}
	q := `SELECT coalesce(` + va + `::VARCHAR, 'NULL') || ' | ' || coalesce(` + vb + `::VARCHAR, 'NULL')
FROM read_parquet(` + sqlString(a) + `, file_row_number = true) a
FULL OUTER JOIN read_parquet(` + sqlString(b) + `, file_row_number = true) b USING (file_row_number)
WHERE a.file_row_number IS NULL OR b.file_row_number IS NULL OR ` + va + ` IS DISTINCT FROM ` + vb + `
ORDER BY file_row_number`
	diffs := queryStrings(t, db, q)
	for i, d := range diffs {
		diffs[i] = strings.ReplaceAll(d, "\n", `\n`)
	}
	return diffs
}

// queryStrings runs q and returns its one text column, row by row.
func queryStrings(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
