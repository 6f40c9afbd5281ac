// Package sql holds the project's SQL: table DDL and views for BigQuery (sql/bigquery) and for the local DuckDB
// warehouse (sql/duckdb), and the analyst reports (sql/reports), which are written once and run on both. The
// .sql files are the source; this package embeds them, splits them into statements and formats query results.
// It imports no database driver.
package sql

import "embed"

// Files holds every .sql file, by path relative to this directory (e.g. "duckdb/tables.sql").
//
//go:embed bigquery/*.sql duckdb/*.sql reports/*.sql bigquery/v*/tables.sql duckdb/v*/tables.sql
var Files embed.FS
