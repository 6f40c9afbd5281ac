package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"sendpilot-loader/configs"
	"sendpilot-loader/load/duckdb"
	sqlfiles "sendpilot-loader/sql"
	"sendpilot-loader/transform"
)

// filesFlag collects repeated --file table=path flags.
type filesFlag []string

func (f *filesFlag) String() string     { return strings.Join(*f, ",") }
func (f *filesFlag) Set(v string) error { *f = append(*f, v); return nil }

// childMain is the plain insert child: it inserts the given Parquet files into a new DuckDB database and exits
// with 0 on success.
func childMain(args []string) int {
	fl := flag.NewFlagSet("scale "+childPlainInsert, flag.ContinueOnError)
	db := fl.String("db", "", "the DuckDB database file to create")
	var files filesFlag
	fl.Var(&files, "file", "table=path of a Parquet file to insert into that table (repeatable)")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if err := plainInsert(context.Background(), *db, files); err != nil {
		fmt.Fprintln(os.Stderr, "bench/scale plain insert:", err)
		return 1
	}
	return 0
}

// plainSettings are the DuckDB settings of the plain insert: those the loader opens its connection with
// (load/duckdb openForLoad: one thread and load.duckdb_memory_limit, written as it writes them). The loader's
// row group settings are left at DuckDB's defaults: they are part of how it loads, not of DuckDB's plain insert.
func plainSettings() string {
	return duckdb.LoadParams(int64(configs.Defaults().Load.DuckDBMemoryLimit))
}

// plainInsert creates the warehouse tables of sql/duckdb/tables.sql in a new database at dbPath and runs one
// plain "INSERT INTO t BY NAME SELECT * FROM read_parquet(file)" per file (autocommit, no dedup).
func plainInsert(ctx context.Context, dbPath string, files []string) error {
	if dbPath == "" || len(files) == 0 {
		return errors.New("check flags: --db and --file are required")
	}
	db, err := sql.Open("duckdb", dbPath+"?"+plainSettings())
	if err != nil {
		return fmt.Errorf("open duckdb: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ddl, err := sqlfiles.Files.ReadFile("duckdb/tables.sql")
	if err != nil {
		return fmt.Errorf("read duckdb ddl: %w", err)
	}
	if _, err := db.ExecContext(ctx, string(ddl)); err != nil {
		return fmt.Errorf("create tables: %w", err)
	}
	for _, f := range files {
		table, path, ok := strings.Cut(f, "=")
		if !ok || !slices.Contains(transform.Tables, table) {
			return fmt.Errorf("check flags: --file %q is not table=path for one of %v", f, transform.Tables)
		}
		q := fmt.Sprintf("INSERT INTO %s BY NAME SELECT * FROM read_parquet('%s')", table, strings.ReplaceAll(path, "'", "''"))
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("insert %s: %w", table, err)
		}
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close duckdb: %w", err)
	}
	return nil
}
