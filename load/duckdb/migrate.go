package duckdb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"sendpilot-loader/load"
	sqlfiles "sendpilot-loader/sql"
	"sendpilot-loader/transform"
)

// The schema this release writes: the columns of sql/duckdb/tables.sql and the version it is recorded as.
var (
	currentTables, currentTablesErr = sqlfiles.Tables("duckdb/tables.sql")
	currentVersion, versionErr      = sqlfiles.Version("duckdb")
)

// schemaTable records the schema versions the file has held, one row per migration; the newest is the one it
// holds. A file made before versions were recorded has no rows and is migrated like any other.
const schemaTable = `CREATE TABLE IF NOT EXISTS _sendpilot_schema (
  version INTEGER NOT NULL, migrated_at TIMESTAMPTZ NOT NULL, changes VARCHAR NOT NULL)`

// migrate brings the tables to the schema w writes, from the difference between it and the file's catalog:
// it adds the nullable columns the tables lack and drops NOT NULL where the schema allows NULL, in one
// transaction that also records the version. It changes nothing when some difference cannot be migrated
// safely, and returns a *load.SchemaDifference saying what differs. It reports whether it changed a table, so
// the caller recreates the views that read them.
func (w *Warehouse) migrate(ctx context.Context) (bool, error) {
	if currentTablesErr != nil || versionErr != nil {
		return false, fmt.Errorf("read duckdb schema: %w", errors.Join(currentTablesErr, versionErr))
	}
	if _, err := w.db.ExecContext(ctx, schemaTable); err != nil {
		return false, fmt.Errorf("create schema log: %w", err)
	}
	var recorded int
	if err := w.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM _sendpilot_schema`).Scan(&recorded); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	if recorded > w.version {
		return false, load.NewerSchema(w.Name(), "file", recorded, w.version)
	}
	have, err := w.catalog(ctx)
	if err != nil {
		return false, err
	}
	var stmts, changes, problems []string
	for _, t := range transform.Tables {
		m := sqlfiles.Diff(t, w.tables[t], have[t])
		problems = append(problems, m.Problems...)
		for _, c := range m.Add {
			stmts = append(stmts, fmt.Sprintf(`ALTER TABLE %s ADD COLUMN %s %s`, t, ident(c.Name), c.Type))
			changes = append(changes, "add "+t+"."+c.Name)
		}
		for _, c := range m.Relax {
			stmts = append(stmts, fmt.Sprintf(`ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL`, t, ident(c.Name)))
			changes = append(changes, "allow NULL in "+t+"."+c.Name)
		}
	}
	if len(problems) > 0 {
		return false, &load.SchemaDifference{Warehouse: w.Name(), Problems: problems}
	}
	if len(stmts) == 0 && recorded == w.version {
		return false, nil
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin migration: %w", err)
	}
	defer tx.Rollback()
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return false, fmt.Errorf("migrate schema (%s): %w", s, err)
		}
	}
	if len(changes) == 0 {
		changes = []string{"record version"}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO _sendpilot_schema VALUES (?, now(), ?)`, w.version, strings.Join(changes, ", ")); err != nil {
		return false, fmt.Errorf("record schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit migration: %w", err)
	}
	return len(stmts) > 0, nil
}

// catalog returns the columns of the loader's tables as the file has them, types spelt as in tables.sql.
func (w *Warehouse) catalog(ctx context.Context) (map[string][]sqlfiles.Column, error) {
	rows, err := w.db.QueryContext(ctx, `SELECT table_name, column_name, data_type, NOT is_nullable FROM duckdb_columns()
WHERE database_name = current_database() AND schema_name = 'main' ORDER BY table_name, column_index`)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	defer rows.Close()
	out := map[string][]sqlfiles.Column{}
	for rows.Next() {
		var table string
		var c sqlfiles.Column
		if err := rows.Scan(&table, &c.Name, &c.Type, &c.NotNull); err != nil {
			return nil, fmt.Errorf("read catalog: %w", err)
		}
		if c.Type == "TIMESTAMP WITH TIME ZONE" {
			c.Type = "TIMESTAMPTZ"
		}
		out[table] = append(out[table], c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	return out, nil
}

// columnList is the quoted, comma-separated list of a table's columns as w writes them.
func (w *Warehouse) columnList(table string) string {
	names := make([]string, len(w.tables[table]))
	for i, c := range w.tables[table] {
		names[i] = ident(c.Name)
	}
	return strings.Join(names, ", ")
}

func ident(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
