// Package sql holds the project's SQL: table DDL, views and analyst reports, for BigQuery (sql/bigquery) and
// for the local DuckDB warehouse (sql/duckdb). The .sql files are the source; this file only embeds them.
package sql

import "embed"

// Files holds every .sql file, by path relative to this directory (e.g. "duckdb/tables.sql").
//
//go:embed bigquery/*.sql duckdb/*.sql
var Files embed.FS
