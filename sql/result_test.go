package sql

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// Every value a warehouse can hold prints in every format: NUL and control characters, invalid UTF-8, long
// text, a JSON column's text holding 1e400, the floats JSON has no number for, alone and nested.
func TestWritePrintsEveryValue(t *testing.T) {
	tests := []struct {
		name     string
		v        any
		text     string // CSV cell
		jsonWant string // the value in the JSON output
	}{
		{"null", nil, "", `null`},
		{"nul byte", "a\x00b", "a\x00b", `"a\u0000b"`},
		{"control characters", "\x01\x1b[31m", "\x01\x1b[31m", `"\u0001\u001b[31m"`},
		{"invalid utf-8", "bad \xff", "bad \xff", `"bad \ufffd"`},
		{"json text with a huge number", `{"n":1e400}`, `{"n":1e400}`, `"{\"n\":1e400}"`},
		{"long text", strings.Repeat("x", 1<<20), strings.Repeat("x", 1<<20), `"` + strings.Repeat("x", 1<<20) + `"`},
		{"infinity", math.Inf(1), "Infinity", `"Infinity"`},
		{"minus infinity", math.Inf(-1), "-Infinity", `"-Infinity"`},
		{"nan", math.NaN(), "NaN", `"NaN"`},
		{"huge float", 1e300, "1" + strings.Repeat("0", 300), `1e+300`},
		{"array with nan", []any{1.5, math.NaN(), nil}, `[1.5,"NaN",null]`, `[1.5,"NaN",null]`},
		{"struct with infinity", map[string]any{"a": math.Inf(1)}, `{"a":"Infinity"}`, `{"a":"Infinity"}`},
		{"time", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), "0001-01-01T00:00:00Z", `"0001-01-01T00:00:00Z"`},
		{"max time", time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), "9999-12-31T23:59:59.999999Z", `"9999-12-31T23:59:59.999999Z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Result{Columns: []string{"k", "v"}, Rows: [][]any{{"x", tt.v}}}
			var table, c, j bytes.Buffer
			if err := r.Write(&table, "table"); err != nil {
				t.Fatalf("table: %v", err)
			}
			if err := r.Write(&c, "csv"); err != nil {
				t.Fatalf("csv: %v", err)
			}
			recs, err := csv.NewReader(&c).ReadAll()
			if err != nil || len(recs) != 2 || recs[1][1] != tt.text {
				t.Errorf("csv cell = %.80q (%v), want %.80q", recs, err, tt.text)
			}
			if err := r.Write(&j, "json"); err != nil {
				t.Fatalf("json: %v", err)
			}
			var rows []map[string]json.RawMessage
			if err := json.Unmarshal(j.Bytes(), &rows); err != nil {
				t.Fatalf("json output is not JSON: %v\n%.200s", err, j.Bytes())
			}
			if got := string(rows[0]["v"]); got != tt.jsonWant {
				t.Errorf("json value = %.80s, want %.80s", got, tt.jsonWant)
			}
		})
	}
}
