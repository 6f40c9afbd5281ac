package sql

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// Result is the answer to a query. Warehouses put values in the forms they share, so that the same query gives
// equal Results on both: nil, bool, int64, float64, string, time.Time in UTC (TIMESTAMP), a "2006-01-02"
// string (DATE), and []any (arrays).
type Result struct {
	Columns []string
	Rows    [][]any
}

// Formats lists the output formats Write accepts.
var Formats = []string{"table", "csv", "json"}

// maxCell bounds a table cell, in characters; csv and json are never cut.
const maxCell = 60

// Write prints the result as an aligned table (NULL for nulls, long text cut), as CSV with a header row
// (empty for nulls), or as a JSON array with one object per line whose keys keep the column order.
func (r *Result) Write(w io.Writer, format string) error {
	switch format {
	case "table":
		return r.writeTable(w)
	case "csv":
		return r.writeCSV(w)
	case "json":
		return r.writeJSON(w)
	}
	return fmt.Errorf("write result: unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

func (r *Result) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(r.Columns, "\t"))
	for _, row := range r.Rows {
		cells := make([]string, len(row))
		for i, v := range row {
			if v == nil {
				cells[i] = "NULL"
				continue
			}
			cells[i] = cut(strings.Join(strings.Fields(text(v)), " "))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	noun := "rows"
	if len(r.Rows) == 1 {
		noun = "row"
	}
	fmt.Fprintf(tw, "(%d %s)\n", len(r.Rows), noun)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

func (r *Result) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(r.Columns)
	rec := make([]string, len(r.Columns))
	for _, row := range r.Rows {
		for i, v := range row {
			rec[i] = ""
			if v != nil {
				rec[i] = text(v)
			}
		}
		cw.Write(rec)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

func (r *Result) writeJSON(w io.Writer) error {
	var buf bytes.Buffer
	buf.WriteString("[")
	for n, row := range r.Rows {
		if n > 0 {
			buf.WriteString(",")
		}
		buf.WriteString("\n{")
		for i, v := range row {
			if i > 0 {
				buf.WriteString(",")
			}
			k, _ := json.Marshal(r.Columns[i])
			buf.Write(k)
			buf.WriteString(":")
			val, err := json.Marshal(jsonable(v))
			if err != nil {
				return fmt.Errorf("write json: column %s: %w", r.Columns[i], err)
			}
			buf.Write(val)
		}
		buf.WriteString("}")
	}
	buf.WriteString("\n]\n")
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// text renders one non-null value.
func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case time.Time:
		return formatTime(x)
	case float64:
		return formatFloat(x)
	case []any, map[string]any:
		b, err := json.Marshal(jsonable(x))
		if err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}

// jsonable returns v in a form encoding/json always encodes: times as text, and the FLOAT64 values JSON has
// no number for (both warehouses hold them) as the strings BigQuery's API uses for them, "NaN", "Infinity"
// and "-Infinity". Strings need nothing: encoding/json writes NUL and control characters as escapes, and
// invalid UTF-8 as U+FFFD.
func jsonable(v any) any {
	switch x := v.(type) {
	case time.Time:
		return formatTime(x)
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return formatFloat(x)
		}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	}
	return v
}

// formatFloat writes a float in full, without an exponent, and the non-finite ones as BigQuery names them.
func formatFloat(x float64) string {
	switch {
	case math.IsNaN(x):
		return "NaN"
	case math.IsInf(x, 1):
		return "Infinity"
	case math.IsInf(x, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.999999Z") }

func cut(s string) string {
	if utf8.RuneCountInString(s) <= maxCell {
		return s
	}
	return string([]rune(s)[:maxCell-1]) + "…"
}
