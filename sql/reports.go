package sql

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Report is a named analyst query from sql/reports. Reports read the views and tables by their bare names and
// use only SQL that BigQuery and DuckDB share, so one file serves both warehouses.
type Report struct {
	Name        string // the file name without .sql
	Description string // the file's first line, a comment
	SQL         string
}

// Reports returns every report, sorted by name.
func Reports() ([]Report, error) {
	names, err := fs.Glob(Files, "reports/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	out := make([]Report, 0, len(names))
	for _, n := range names {
		raw, err := Files.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("read report: %w", err)
		}
		first, body, _ := strings.Cut(string(raw), "\n")
		if !strings.HasPrefix(first, "-- ") {
			return nil, fmt.Errorf("read report %s: the first line must be a \"-- description\" comment", n)
		}
		out = append(out, Report{
			Name:        strings.TrimSuffix(path.Base(n), ".sql"),
			Description: strings.TrimPrefix(first, "-- "),
			SQL:         strings.TrimSpace(body),
		})
	}
	return out, nil
}

// FindReport returns the report with the given name.
func FindReport(name string) (Report, error) {
	all, err := Reports()
	if err != nil {
		return Report{}, err
	}
	for _, r := range all {
		if r.Name == name {
			return r, nil
		}
	}
	return Report{}, fmt.Errorf("find report: no report named %q (see report --list)", name)
}
