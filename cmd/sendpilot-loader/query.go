package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"sendpilot-loader/configs"
	"sendpilot-loader/load/duckdb"
	sqlfiles "sendpilot-loader/sql"
)

func runSQL(ctx context.Context, env *environment, args []string) int {
	var format string
	cfg, rest, code, ok := parseConfig(env, "sql", `sql [--format table|csv|json] [flags] "SELECT …" (or "-" to read it from stdin)`, args,
		func(fs *flag.FlagSet, c *configs.Config) {
			configs.BindCommon(fs, c)
			configs.BindWarehouse(fs, c)
			fs.StringVar(&format, "format", "table", "output format: table, csv or json")
		})
	if !ok {
		return code
	}
	if len(rest) > 1 {
		fmt.Fprintf(env.stderr, "sendpilot-loader sql: give the query as one quoted argument (got %d arguments)\n", len(rest))
		return 2
	}
	query := strings.Join(rest, "")
	if query == "-" {
		b, err := io.ReadAll(env.stdin)
		if err != nil {
			fmt.Fprintf(env.stderr, "sendpilot-loader sql: read stdin: %v\n", err)
			return 1
		}
		query = string(b)
	}
	if strings.TrimSpace(query) == "" {
		fmt.Fprintln(env.stderr, `sendpilot-loader sql: give a query, e.g. sendpilot-loader sql "SELECT count(*) FROM events"`)
		return 2
	}
	return runQuery(ctx, env, cfg, query, format)
}

func runReport(ctx context.Context, env *environment, args []string) int {
	var (
		format string
		list   bool
	)
	cfg, rest, code, ok := parseConfig(env, "report", "report NAME [--format table|csv|json] [flags] | report --list", args,
		func(fs *flag.FlagSet, c *configs.Config) {
			configs.BindCommon(fs, c)
			configs.BindWarehouse(fs, c)
			fs.StringVar(&format, "format", "table", "output format: table, csv or json")
			fs.BoolVar(&list, "list", false, "list the reports and exit")
		})
	if !ok {
		return code
	}
	var name string
	if len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		fmt.Fprintf(env.stderr, "sendpilot-loader report: one report at a time (extra arguments: %q)\n", rest)
		return 2
	}
	if list || name == "" {
		reports, err := sqlfiles.Reports()
		if err != nil {
			fmt.Fprintf(env.stderr, "sendpilot-loader report: %v\n", err)
			return 1
		}
		w := env.stdout
		if !list {
			w = env.stderr
			fmt.Fprintln(w, "Usage: sendpilot-loader report NAME [--format table|csv|json]\n\nReports:")
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, r := range reports {
			fmt.Fprintf(tw, "%s\t%s\n", r.Name, r.Description)
		}
		tw.Flush()
		if !list {
			return 2
		}
		return 0
	}
	r, err := sqlfiles.FindReport(name)
	if err != nil {
		fmt.Fprintf(env.stderr, "sendpilot-loader report: %v\n", err)
		return 2
	}
	return runQuery(ctx, env, cfg, r.SQL, format)
}

// runQuery runs one statement on the configured warehouse and prints the result. Exit codes: 0 done, 1 the
// query or the warehouse failed, 2 bad usage, 3 a load held the DuckDB file for the whole wait.
func runQuery(ctx context.Context, env *environment, cfg configs.Config, query, format string) int {
	if !slices.Contains(sqlfiles.Formats, format) {
		fmt.Fprintf(env.stderr, "sendpilot-loader: unknown --format %q (want one of %s)\n", format, strings.Join(sqlfiles.Formats, ", "))
		return 2
	}
	res, err := queryWarehouse(ctx, env, cfg, query)
	switch {
	case errors.Is(err, duckdb.ErrNoWarehouse):
		fmt.Fprintf(env.stderr, "sendpilot-loader: no warehouse at %s yet; the first load creates it (sendpilot-loader load)\n", cfg.DuckDBFile())
		return 1
	case errors.Is(err, duckdb.ErrBusy):
		fmt.Fprintf(env.stderr, "sendpilot-loader: %v\n", err)
		return 3
	case err != nil:
		fmt.Fprintf(env.stderr, "sendpilot-loader: %v\n", err)
		return 1
	}
	if err := res.Write(env.stdout, format); err != nil {
		fmt.Fprintf(env.stderr, "sendpilot-loader: %v\n", err)
		return 1
	}
	return 0
}

// queryWarehouse runs a statement on BigQuery when a project is configured, on the DuckDB file otherwise. On
// DuckDB it says so on stderr, once, when a load holds the file and it has to wait.
func queryWarehouse(ctx context.Context, env *environment, cfg configs.Config, query string) (*sqlfiles.Result, error) {
	if cfg.BigQuery.Project != "" {
		w, err := openBigQuery(ctx, cfg)
		if err != nil {
			return nil, err
		}
		defer w.Close()
		return w.Query(ctx, query)
	}
	return duckdb.Query(ctx, cfg.DuckDBFile(), query, duckdb.QueryOptions{
		BusyTimeout: 2 * time.Minute,
		OnWait: func() {
			fmt.Fprintf(env.stderr, "waiting for %s: a load is writing it (up to 2m)…\n", cfg.DuckDBFile())
		},
	})
}
