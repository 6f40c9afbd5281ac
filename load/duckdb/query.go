package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	sqlfiles "sendpilot-loader/sql"
)

// ErrNoWarehouse is returned (wrapped) by Query when the database file does not exist yet: the first load
// creates it.
var ErrNoWarehouse = errors.New("no warehouse file yet (the first load creates it)")

// QueryOptions tune Query.
type QueryOptions struct {
	// BusyTimeout bounds how long Query waits while a load holds the file (default 30 s).
	BusyTimeout time.Duration
	// OnWait, if set, is called once when Query starts waiting for a load to release the file.
	OnWait func()
}

// Query runs one statement against the warehouse file opened read-only, so it can never change the data, and
// returns its rows with values in sql.Result's shared forms. The session's time zone is UTC, as in BigQuery.
// DuckDB lets no process write the file while another has it open, so Query waits for a running load to
// finish, and a load waits for a running query.
func Query(ctx context.Context, path, query string, opts QueryOptions) (*sqlfiles.Result, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("query %s: %w", path, ErrNoWarehouse)
	}
	if opts.BusyTimeout == 0 {
		opts.BusyTimeout = 30 * time.Second
	}
	db, err := openWaiting(ctx, path, path+"?access_mode=READ_ONLY", nil, opts.BusyTimeout, opts.OnWait)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open duckdb connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET TimeZone = 'UTC'"); err != nil {
		return nil, fmt.Errorf("set time zone: %w", err)
	}
	rows, err := conn.QueryContext(ctx, jsonAsText(ctx, conn, query))
	if err != nil {
		return nil, fmt.Errorf("run query: %w", err)
	}
	defer rows.Close()
	return readResult(rows)
}

// jsonAsText returns query rewritten so that JSON values come back as their text, or query itself when it
// has no JSON column or cannot be described (a statement that is not a query). The driver decodes a JSON
// value into Go values with encoding/json, which fails on numbers beyond float64 (1e400), reorders object
// keys and rounds wide integers; as text every value a JSON column holds prints exactly as stored, which is
// also the form BigQuery's client returns. Columns are addressed by position (#n), so duplicate or odd names
// keep working, and JSON nested in a LIST or STRUCT becomes VARCHAR in the same shape.
func jsonAsText(ctx context.Context, conn *sql.Conn, query string) string {
	inner := strings.TrimRight(strings.TrimSpace(query), "; \t\r\n")
	rows, err := conn.QueryContext(ctx, "DESCRIBE ("+inner+"\n)")
	if err != nil {
		return query
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil || len(cols) < 2 {
		return query
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var exprs []string
	changed := false
	for n := 1; rows.Next(); n++ {
		if rows.Scan(ptrs...) != nil {
			return query
		}
		name, _ := vals[0].(string)
		typ, _ := vals[1].(string)
		expr := fmt.Sprintf("#%d", n)
		if jsonType.MatchString(typ) {
			expr = fmt.Sprintf("CAST(#%d AS %s)", n, jsonType.ReplaceAllString(typ, "VARCHAR"))
			changed = true
		}
		exprs = append(exprs, expr+" AS "+ident(name))
	}
	if rows.Err() != nil || !changed {
		return query
	}
	return "SELECT " + strings.Join(exprs, ", ") + " FROM (" + inner + "\n)"
}

// jsonType finds JSON in a DuckDB type name such as JSON, JSON[] or STRUCT(a JSON).
var jsonType = regexp.MustCompile(`\bJSON\b`)

func readResult(rows *sql.Rows) (*sqlfiles.Result, error) {
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("read columns: %w", err)
	}
	res := &sqlfiles.Result{}
	for _, t := range types {
		res.Columns = append(res.Columns, t.Name())
	}
	vals := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("read row: %w", err)
		}
		row := make([]any, len(vals))
		for i, v := range vals {
			row[i] = shared(v, types[i].DatabaseTypeName())
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rows: %w", err)
	}
	return res, nil
}

// shared puts a value scanned from DuckDB in the form sql.Result documents.
func shared(v any, dbType string) any {
	switch x := v.(type) {
	case nil, bool, int64, float64, string:
		return v
	case time.Time:
		if dbType == "DATE" {
			return x.Format("2006-01-02")
		}
		return x.UTC()
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		return int64(x)
	case float32:
		return float64(x)
	case *big.Int:
		if x.IsInt64() {
			return x.Int64()
		}
		return x.String()
	case duckdb.Decimal:
		return x.Float64()
	case duckdb.UUID:
		return x.String()
	case []byte:
		return string(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = shared(e, "")
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = shared(e, "")
		}
		return out
	}
	return fmt.Sprint(v)
}
