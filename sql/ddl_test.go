package sql_test

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	sqlfiles "sendpilot-loader/sql"
	"sendpilot-loader/transform"
)

// arrowFor maps a SQL type to the Arrow type the transform writes for it.
func arrowFor(typ string) string {
	switch typ {
	case "VARCHAR", "STRING", "JSON":
		return arrow.BinaryTypes.String.String()
	case "BIGINT", "INT64":
		return arrow.PrimitiveTypes.Int64.String()
	case "DOUBLE", "FLOAT64":
		return arrow.PrimitiveTypes.Float64.String()
	case "BOOLEAN", "BOOL":
		return arrow.FixedWidthTypes.Boolean.String()
	case "TIMESTAMPTZ", "TIMESTAMP":
		return (&arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}).String()
	case "VARCHAR[]", "ARRAY<STRING>":
		return arrow.ListOf(arrow.BinaryTypes.String).String()
	}
	return "unknown SQL type " + typ
}

// The DDL of both warehouses must match the Arrow schemas column for column: same names, same order, same
// types, NOT NULL exactly where the Arrow field is not nullable.
func TestDDLMatchesArrowSchemas(t *testing.T) {
	for _, path := range []string{"duckdb/tables.sql", "bigquery/tables.sql"} {
		tables, err := sqlfiles.Tables(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(tables) != len(transform.Tables) {
			t.Errorf("%s defines %d tables, want %d", path, len(tables), len(transform.Tables))
		}
		for _, name := range transform.Tables {
			schema := transform.Schema(name)
			cols := tables[name]
			if len(cols) != schema.NumFields() {
				t.Errorf("%s %s: %d columns, Arrow schema has %d", path, name, len(cols), schema.NumFields())
				continue
			}
			for i, f := range schema.Fields() {
				c := cols[i]
				got := fmt.Sprintf("%s %s notnull=%v", c.Name, arrowFor(c.Type), c.NotNull)
				want := fmt.Sprintf("%s %s notnull=%v", f.Name, f.Type, !f.Nullable)
				if got != want {
					t.Errorf("%s %s column %d: DDL says %s, Arrow says %s", path, name, i+1, got, want)
				}
			}
		}
	}
}
