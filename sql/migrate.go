package sql

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Schema versions: every release that changes a dialect's tables.sql records the new file as
// <dialect>/v<N>/tables.sql, N one more than the newest recorded, so that the schema of every earlier release
// stays available (upgrade tests create warehouses from them). The current schema is the newest recorded
// version; a test checks that tables.sql equals it.

// Version returns the newest schema version recorded for a dialect ("duckdb" or "bigquery"): the highest N
// with a <dialect>/v<N>/tables.sql.
func Version(dialect string) (int, error) {
	dirs, err := fs.Glob(Files, dialect+"/v*/tables.sql")
	if err != nil {
		return 0, fmt.Errorf("list schema versions: %w", err)
	}
	newest := 0
	for _, d := range dirs {
		n, err := strconv.Atoi(strings.TrimPrefix(strings.Split(d, "/")[1], "v"))
		if err != nil {
			return 0, fmt.Errorf("list schema versions: %s is not v<number>", d)
		}
		newest = max(newest, n)
	}
	if newest == 0 {
		return 0, fmt.Errorf("list schema versions: no %s/v<N>/tables.sql", dialect)
	}
	return newest, nil
}

// VersionPath is the DDL file of one recorded schema version of a dialect, for Tables and for tests.
func VersionPath(dialect string, version int) string {
	return fmt.Sprintf("%s/v%d/tables.sql", dialect, version)
}

// Migration is what it takes to bring one table of a warehouse to the schema a release writes. Column types
// are compared as written, so both sides must spell them in the dialect's DDL form (e.g. TIMESTAMPTZ, not
// TIMESTAMP WITH TIME ZONE).
type Migration struct {
	// Add are the columns the table lacks, all nullable, in the schema's order: adding them is safe, the rows
	// already there read NULL in them.
	Add []Column
	// Relax are the columns NOT NULL in the table that the schema allows to be null: dropping the constraint
	// is safe.
	Relax []Column
	// Problems are the differences that cannot be migrated safely, each saying what differs and what to run.
	// Loads must not go on while there is one.
	Problems []string
}

// Diff compares the columns a table has (have) with the columns the schema wants (want). table is the name to
// write in the statements a Problem suggests (qualified with its dataset where the dialect needs it). The
// order of the columns does not matter: loads name every column they write.
func Diff(table string, want, have []Column) Migration {
	var m Migration
	got := map[string]Column{}
	for _, c := range have {
		got[strings.ToLower(c.Name)] = c
	}
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[strings.ToLower(w.Name)] = true
		h, ok := got[strings.ToLower(w.Name)]
		switch {
		case !ok && !w.NotNull:
			m.Add = append(m.Add, w)
		case !ok:
			m.Problems = append(m.Problems, fmt.Sprintf("%s.%s is missing and this release declares it NOT NULL, which cannot be added to a table that has rows: run the release that created the table", table, w.Name))
		case !strings.EqualFold(h.Type, w.Type):
			m.Problems = append(m.Problems, fmt.Sprintf("%s.%s is %s in the warehouse but this release writes %s: copy the column aside if you need it, then run ALTER TABLE %s DROP COLUMN %s (the loader adds it back as %s; backfill --replace refills it)",
				table, w.Name, h.Type, w.Type, table, h.Name, w.Type))
		case h.NotNull && !w.NotNull:
			m.Relax = append(m.Relax, w)
		case !h.NotNull && w.NotNull:
			m.Problems = append(m.Problems, fmt.Sprintf("%s.%s allows NULL in the warehouse but this release declares it NOT NULL: run the release that created the table, or recreate the table from this release's tables.sql and backfill", table, w.Name))
		}
	}
	for _, h := range have {
		if !wanted[strings.ToLower(h.Name)] {
			m.Problems = append(m.Problems, fmt.Sprintf("%s.%s is in the warehouse but not in this release's schema: run the release that added it, or copy the column aside if you need it and run ALTER TABLE %s DROP COLUMN %s",
				table, h.Name, table, h.Name))
		}
	}
	return m
}
