package sql

import (
	"bufio"
	"fmt"
	"strings"
)

// Column is one column of a CREATE TABLE statement.
type Column struct {
	Name    string
	Type    string // as written: VARCHAR, INT64, JSON, ARRAY<STRING>, …
	NotNull bool
}

// Tables parses the CREATE TABLE statements of a DDL file in this directory (e.g. "bigquery/tables.sql"),
// written in this project's layout: one column per line; constraints, options and comments are skipped. It
// returns the columns of each table in order, keyed by the table's name without dataset.
func Tables(path string) (map[string][]Column, error) {
	raw, err := Files.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ddl: %w", err)
	}
	tables := map[string][]Column{}
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
			if len(f) < 2 {
				return nil, fmt.Errorf("parse ddl %s: column line %q", path, line)
			}
			tables[current] = append(tables[current], Column{Name: f[0], Type: f[1], NotNull: strings.Contains(line, "NOT NULL")})
		}
	}
	return tables, nil
}
