package sql_test

import (
	"bufio"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	sqlfiles "sendpilot-loader/sql"
	"sendpilot-loader/transform"
)

type ddlColumn struct {
	name, typ string
	notNull   bool
}

// parseTables reads the CREATE TABLE statements of a DDL file written in this project's layout: one column
// per line, constraints and comments ignored.
func parseTables(t *testing.T, path string) map[string][]ddlColumn {
	t.Helper()
	raw, err := sqlfiles.Files.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string][]ddlColumn{}
	var current string
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		line := strings.TrimSpace(strings.SplitN(sc.Text(), "--", 2)[0])
		switch {
		case strings.HasPrefix(line, "CREATE TABLE"):
			f := strings.Fields(line)
			name := strings.Trim(f[len(f)-2], "`")
			current = name[strings.LastIndex(name, ".")+1:]
			tables[current] = nil
		case current == "" || line == "" || strings.HasPrefix(line, "PRIMARY KEY"):
		case strings.HasPrefix(line, ")"):
			current = ""
		default:
			f := strings.Fields(strings.TrimSuffix(line, ","))
			tables[current] = append(tables[current], ddlColumn{name: f[0], typ: f[1], notNull: strings.Contains(line, "NOT NULL")})
		}
	}
	return tables
}

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
		tables := parseTables(t, path)
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
				got := fmt.Sprintf("%s %s notnull=%v", c.name, arrowFor(c.typ), c.notNull)
				want := fmt.Sprintf("%s %s notnull=%v", f.Name, f.Type, !f.Nullable)
				if got != want {
					t.Errorf("%s %s column %d: DDL says %s, Arrow says %s", path, name, i+1, got, want)
				}
			}
		}
	}
}
