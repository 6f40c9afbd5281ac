package sql

import (
	"fmt"
	"strings"
)

// View is one CREATE VIEW statement of a dialect's views.sql.
type View struct {
	Name    string // the view's name, without dataset
	Purpose string // the comment line above the statement, less its "name: " prefix
	SQL     string // the whole statement, without the final semicolon
}

// Views returns the views of a dialect ("bigquery" or "duckdb") in creation order: a view only depends on
// views before it. Each statement in the file is preceded by a "-- name: purpose" comment line and ends with
// a semicolon at the end of a line.
func Views(dialect string) ([]View, error) {
	path := dialect + "/views.sql"
	raw, err := Files.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read views: %w", err)
	}
	var (
		views   []View
		purpose string
		stmt    []string
	)
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if len(stmt) == 0 {
			if strings.HasPrefix(trimmed, "-- ") {
				purpose = strings.TrimPrefix(trimmed, "-- ")
				continue
			}
			if !strings.HasPrefix(trimmed, "CREATE OR REPLACE VIEW ") {
				continue
			}
		}
		stmt = append(stmt, line)
		if !strings.HasSuffix(trimmed, ";") {
			continue
		}
		v := View{SQL: strings.TrimSuffix(strings.Join(stmt, "\n"), ";")}
		f := strings.Fields(stmt[0])
		name := strings.Trim(f[4], "`")
		v.Name = name[strings.LastIndex(name, ".")+1:]
		head, rest, ok := strings.Cut(purpose, ": ")
		if !ok || head != v.Name {
			return nil, fmt.Errorf("parse views %s: view %s needs a \"-- %s: purpose\" line above it", path, v.Name, v.Name)
		}
		v.Purpose = rest
		views = append(views, v)
		stmt, purpose = nil, ""
	}
	if len(stmt) > 0 {
		return nil, fmt.Errorf("parse views %s: statement without a final semicolon", path)
	}
	return views, nil
}
