package duckdb

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	sqlfiles "sendpilot-loader/sql"
)

// Query returns every value a DuckDB file can hold in a form Result prints: a JSON column's text as stored
// (numbers beyond float64 such as 1e400, which the driver's own decoding refuses, key order, wide integers),
// JSON inside lists and structs, NUL bytes, infinite floats, and columns with duplicate names.
func TestQueryReadsEveryValue(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.duckdb")
	db, err := Open(ctx, path, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`CREATE TABLE t AS SELECT
  '{"b":1e400,"a":123456789012345678901234567890}'::JSON AS j,
  ['1e400'::JSON, '{"x":-1e999}'::JSON] AS js,
  {'inner': '1e400'::JSON, 'n': 1} AS s,
  'a' || chr(0) || 'b' AS nul,
  'inf'::DOUBLE AS inf,
  NULL::JSON AS nothing`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		query string
		want  [][]any
	}{
		{"SELECT j, js, nul, inf, nothing FROM t", [][]any{{`{"b":1e400,"a":123456789012345678901234567890}`, []any{"1e400", `{"x":-1e999}`}, "a\x00b", math.Inf(1), nil}}},
		{"SELECT s FROM t;  ", [][]any{{map[string]any{"inner": "1e400", "n": int64(1)}}}},
		{"SELECT j, j FROM t", [][]any{{`{"b":1e400,"a":123456789012345678901234567890}`, `{"b":1e400,"a":123456789012345678901234567890}`}}},
		{"SELECT j->'$.b' AS b FROM t ORDER BY 1", [][]any{{"1e400"}}},
		{"SELECT 1 AS one", [][]any{{int64(1)}}},
	} {
		res, err := Query(ctx, path, tt.query, QueryOptions{})
		if err != nil {
			t.Errorf("%s: %v", tt.query, err)
			continue
		}
		if got, want := render(t, res), render(t, &sqlfiles.Result{Columns: res.Columns, Rows: tt.want}); got != want {
			t.Errorf("%s:\n got %s\nwant %s", tt.query, got, want)
		}
		for _, format := range sqlfiles.Formats {
			if err := res.Write(new(bytes.Buffer), format); err != nil {
				t.Errorf("%s: write %s: %v", tt.query, format, err)
			}
		}
	}
	// A statement that is not a query still runs as it is.
	if res, err := Query(ctx, path, "SHOW TABLES", QueryOptions{}); err != nil || len(res.Rows) != 1 {
		t.Errorf("SHOW TABLES: %v, %v", res, err)
	}
}

func inf() float64 { var z float64; return 1 / z }

// render returns r as the sql command's JSON output, which must be JSON.
func render(t *testing.T, r *sqlfiles.Result) string {
	t.Helper()
	var b strings.Builder
	if err := r.Write(&b, "json"); err != nil {
		t.Fatal(err)
	}
	if !json.Valid([]byte(b.String())) {
		t.Fatalf("output is not JSON: %s", b.String())
	}
	return b.String()
}
