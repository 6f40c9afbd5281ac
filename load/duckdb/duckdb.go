// Package duckdb is the embedded local warehouse: a single DuckDB file, the default when no BigQuery project is
// configured, so the whole pipeline runs without a cloud account. It is the only package that imports the
// DuckDB driver.
//
// A batch is loaded in one transaction that inserts each table's rows from the batch's Parquet file, naming
// every column, deduplicated inside the batch on the natural key and skipping keys already present (an
// anti-join on the key), and records the batch in _sendpilot_batches. A Replace batch first deletes, in the
// same transaction, the rows of every table whose event_id is one of the batch's events. One loader at a time
// holds the data directory's lock, so no other writer can slip a key in between. A crash before the commit
// leaves nothing; loading the batch again after the commit inserts nothing more.
//
// Before creating views and before each load, the tables are migrated to the schema of sql/duckdb/tables.sql
// (see migrate): missing nullable columns are added and the version recorded in _sendpilot_schema.
//
// DuckDB lets one process write a database file at a time, so a Warehouse opens the file only for the
// duration of Ensure/Load and Close releases it: other processes (sql, report, status) can open it between
// loads.
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"sendpilot-loader/internal/memlimit"
	"sendpilot-loader/load"
	sqlfiles "sendpilot-loader/sql"
	"sendpilot-loader/transform"
)

// Warehouse is a DuckDB database file.
type Warehouse struct {
	path string
	// MemoryLimit caps DuckDB's buffer memory during a load, in bytes (0: DuckDB's default, 80% of RAM). A load
	// writes its rows out as it goes, so most of what the cap evicts is pages already written. While the file
	// is open for loading, the cap comes out of the Go heap's soft limit (internal/memlimit), so DuckDB and Go
	// together stay within the process's memory_limit.
	MemoryLimit int64
	// BusyTimeout bounds how long Open waits for another process to release the file (default 30 s).
	BusyTimeout time.Duration
	db          *sql.DB
	release     func() // gives back to the Go heap the memory DuckDB may hold while db is open (memlimit)
	// tables are the columns the warehouse writes, per table, and version the schema version they are:
	// sql/duckdb/tables.sql and its recorded version (tests stand in for other releases with others).
	tables  map[string][]sqlfiles.Column
	version int
}

var _ load.Warehouse = (*Warehouse)(nil)

// New returns a warehouse for the DuckDB file at path; nothing is opened yet.
func New(path string) *Warehouse {
	return &Warehouse{path: path, BusyTimeout: 30 * time.Second, tables: currentTables, version: currentVersion}
}

// Name implements load.Warehouse.
func (w *Warehouse) Name() string { return "duckdb:" + w.path }

// Open opens the database file for writing, waiting up to timeout while another process holds it.
func Open(ctx context.Context, path string, timeout time.Duration) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create warehouse dir: %w", err)
	}
	return openWaiting(ctx, path, path, nil, timeout, nil)
}

// loadRowGroupSize is the row group size of the loader's connection. The rows a transaction appends stay in
// memory until a whole row group is full; with DuckDB's default (122,880 rows) a batch's wide leads never
// filled one, so a whole batch was held (or spilled) until its commit. Smaller row groups go to the file as
// the insert runs, and their pages can simply be evicted.
const loadRowGroupSize = 16384

// openForLoad opens the file for loading with bounded memory: an in-memory DuckDB instance with one thread (a
// parallel insert keeps a partial row group per thread, doubling memory) and memoryLimit bytes that attaches
// the file with small row groups (an ATTACH option, not stored in the file). The file is attached under the
// catalog name DuckDB gives it when opened directly, so names qualified with it mean the same in both.
func openForLoad(ctx context.Context, path string, memoryLimit int64, timeout time.Duration) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create warehouse dir: %w", err)
	}
	alias := `"` + strings.ReplaceAll(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), `"`, `""`) + `"`
	setup := fmt.Sprintf(`SET temp_directory = %s; SET write_buffer_row_group_count = 1;
ATTACH IF NOT EXISTS %s AS %s (ROW_GROUP_SIZE %d); USE %s`, quote(path+".tmp"), quote(path), alias, loadRowGroupSize, alias)
	init := func(e driver.ExecerContext) error {
		_, err := e.ExecContext(context.Background(), setup, nil)
		return err
	}
	return openWaiting(ctx, path, "?"+LoadParams(memoryLimit), init, timeout, nil)
}

// LoadParams are the DuckDB settings a load runs with, as connection parameters: one thread (a parallel
// insert keeps a partial row group per thread, doubling memory) and loadMemory's limit, when there is one.
func LoadParams(memoryLimit int64) string {
	params := "threads=1"
	if n := loadMemory(memoryLimit); n > 0 {
		params += fmt.Sprintf("&memory_limit=%dMB", n>>20)
	}
	return params
}

// loadMemory is DuckDB's memory limit during a load for a configured limit in bytes: rounded down to MiB, at
// least 64 MiB; 0 (DuckDB's default, 80% of RAM) when none is configured.
func loadMemory(memoryLimit int64) int64 {
	if memoryLimit <= 0 {
		return 0
	}
	return max(memoryLimit>>20, 64) << 20
}

// openWaiting opens dsn (running init on each new connection), retrying while another process holds the
// file, for up to timeout. It calls onWait, if set, once when it starts waiting.
func openWaiting(ctx context.Context, path, dsn string, init func(driver.ExecerContext) error, timeout time.Duration, onWait func()) (*sql.DB, error) {
	deadline := time.Now().Add(timeout)
	for {
		c, err := duckdb.NewConnector(dsn, init)
		if err == nil {
			db := sql.OpenDB(c)
			err = db.PingContext(ctx)
			if err == nil {
				db.SetMaxOpenConns(1) // one connection: a transaction and its statements share it
				return db, nil
			}
			db.Close()
		}
		if !isLockConflict(err) {
			return nil, fmt.Errorf("open duckdb %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("open duckdb %s: %w (waited %s): %w", path, ErrBusy, timeout, err)
		}
		if onWait != nil {
			onWait()
			onWait = nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("open duckdb %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// isLockConflict reports whether DuckDB refused the file because another process holds it.
func isLockConflict(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "Could not set lock") || strings.Contains(err.Error(), "Conflicting lock"))
}

func (w *Warehouse) open(ctx context.Context) error {
	if w.db != nil {
		return nil
	}
	db, err := openForLoad(ctx, w.path, w.MemoryLimit, w.BusyTimeout)
	if err != nil {
		return err
	}
	w.db = db
	w.release = memlimit.Hold(loadMemory(w.MemoryLimit))
	return nil
}

// Ensure implements load.Warehouse: it runs sql/duckdb/tables.sql, creates the batch log, migrates the tables
// to this release's schema and (re)creates the views.
func (w *Warehouse) Ensure(ctx context.Context) error {
	if err := w.open(ctx); err != nil {
		return err
	}
	ddl, err := sqlfiles.Files.ReadFile("duckdb/tables.sql")
	if err != nil {
		return fmt.Errorf("read duckdb ddl: %w", err)
	}
	if _, err := w.db.ExecContext(ctx, string(ddl)); err != nil {
		return fmt.Errorf("create duckdb tables: %w", err)
	}
	const batches = `CREATE TABLE IF NOT EXISTS _sendpilot_batches (
  batch_id VARCHAR PRIMARY KEY, loaded_at TIMESTAMPTZ NOT NULL, events BIGINT, leads BIGINT, experience BIGINT, education BIGINT)`
	if _, err := w.db.ExecContext(ctx, batches); err != nil {
		return fmt.Errorf("create batch log: %w", err)
	}
	if _, err := w.migrate(ctx); err != nil {
		return err
	}
	return w.createViews(ctx)
}

// createViews creates or replaces the views of sql/duckdb/views.sql, in file order. DuckDB binds a view's
// columns when it is created, so views are created again after the tables they read change.
func (w *Warehouse) createViews(ctx context.Context) error {
	views, err := sqlfiles.Views("duckdb")
	if err != nil {
		return err
	}
	for _, v := range views {
		if _, err := w.db.ExecContext(ctx, v.SQL); err != nil {
			return fmt.Errorf("create view %s: %w", v.Name, err)
		}
	}
	return nil
}

// Load implements load.Warehouse.
func (w *Warehouse) Load(ctx context.Context, b load.Batch) (load.LoadResult, error) {
	res := load.LoadResult{Inserted: map[string]int64{}}
	if err := w.open(ctx); err != nil {
		return res, err
	}
	if changed, err := w.migrate(ctx); err != nil {
		return res, err
	} else if changed {
		if err := w.createViews(ctx); err != nil {
			return res, err
		}
	}
	// The transform has just left a heap of garbage: hand it back to the OS before DuckDB's memory comes on top.
	debug.FreeOSMemory()
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("begin load: %w", err)
	}
	defer tx.Rollback()

	var done int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM _sendpilot_batches WHERE batch_id = ?`, b.ID).Scan(&done); err != nil {
		return res, fmt.Errorf("look up batch: %w", err)
	}
	if done > 0 {
		return res, nil // committed before a crash; nothing more to do
	}
	if b.Replace {
		if res.Replaced, err = replace(ctx, tx, b); err != nil {
			return res, classify(err)
		}
	}
	fresh, err := freshEvents(ctx, tx, b)
	if err != nil {
		return res, classify(err)
	}
	for _, table := range transform.Tables {
		path, ok := b.Files[table]
		if !ok || b.Rows[table] == 0 {
			continue
		}
		n, err := w.insert(ctx, tx, table, path, b, fresh)
		if err != nil {
			return res, classify(fmt.Errorf("insert %s: %w", table, err))
		}
		res.Inserted[table] = n
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO _sendpilot_batches VALUES (?, now(), ?, ?, ?, ?)`, b.ID,
		res.Inserted[transform.TableEvents], res.Inserted[transform.TableLeads],
		res.Inserted[transform.TableExperience], res.Inserted[transform.TableEducation])
	if err != nil {
		return res, fmt.Errorf("record batch: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("commit load: %w", err)
	}
	return res, nil
}

// freshEvents reports whether every event of the batch is new: no event_id repeats inside the batch's events
// file and none is stored yet (looked up as storedKeys does). Then no row of any table can collide, because a
// child row's key starts with its event's ID and an event's rows are committed together, so each table's rows
// are inserted as they are: the dedup's joins cost as much again as the insert, and a backfill of new history
// or a batch of new deliveries, the usual cases, need none. A batch without an events file is never fresh.
func freshEvents(ctx context.Context, tx *sql.Tx, b load.Batch) (bool, error) {
	path, ok := b.Files[transform.TableEvents]
	if !ok || b.Rows[transform.TableEvents] == 0 {
		return false, nil
	}
	var repeats, stored int64
	q := fmt.Sprintf(`SELECT (SELECT count(*) - count(DISTINCT event_id) FROM %s),
       (SELECT count(*) FROM (%s))`, parquetSQL(path, false), storedKeys(transform.TableEvents, path, b))
	if err := tx.QueryRowContext(ctx, q).Scan(&repeats, &stored); err != nil {
		return false, fmt.Errorf("look up stored events: %w", err)
	}
	return repeats == 0 && stored == 0, nil
}

// keepTable is the temporary table that holds, during a load, the file row numbers of the rows to insert.
const keepTable = "_sendpilot_keep"

// insert inserts the rows of the batch's file at path into table and returns how many. A fresh batch's rows
// are inserted as they are (see freshEvents). Otherwise the rows to insert are first chosen from the key
// columns alone (keepSQL) into a temporary table of file row numbers, and only then are the whole rows read,
// those whose number is in it: DuckDB plans a correlated NOT EXISTS over whole rows by building its hash table
// on them, so a batch wider than the memory cap (a backfill of history the warehouse holds) ran out of memory.
// A batch whose rows are all stored reads no whole row at all.
func (w *Warehouse) insert(ctx context.Context, tx *sql.Tx, table, path string, b load.Batch, fresh bool) (int64, error) {
	cols := w.columnList(table)
	if fresh {
		r, err := tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %[1]s (%[2]s) SELECT %[2]s FROM %[3]s", table, cols, parquetSQL(path, false)))
		if err != nil {
			return 0, err
		}
		return r.RowsAffected()
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE TEMP TABLE %s AS %s", keepTable, keepSQL(table, path, b))); err != nil {
		return 0, err
	}
	defer tx.ExecContext(ctx, "DROP TABLE IF EXISTS "+keepTable)
	var keep int64
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+keepTable).Scan(&keep); err != nil || keep == 0 {
		return 0, err
	}
	r, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %[1]s (%[2]s)
SELECT %[2]s FROM %[3]s
WHERE file_row_number IN (SELECT n FROM %[4]s)`, table, cols, parquetSQL(path, true), keepTable))
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

// keepSQL selects, from the key columns of the batch's file at path, the file row number of the first row
// (in file order) of each natural key that is not stored yet. The stored side is narrowed to the rows the
// batch can collide with (storedKeys), so its cost and memory follow the batch, not the table.
func keepSQL(table, path string, b load.Batch) string {
	keys := transform.NaturalKeys[table]
	var match []string
	for _, k := range keys {
		match = append(match, fmt.Sprintf("t.%s = k.%s", k, k))
	}
	return fmt.Sprintf(`SELECT min(k.file_row_number) AS n
FROM (SELECT file_row_number, %[2]s FROM %[1]s) k
WHERE NOT EXISTS (SELECT 1 FROM (%[3]s) t WHERE %[4]s)
GROUP BY %[5]s`, parquetSQL(path, true), strings.Join(keys, ", "), storedKeys(table, path, b), strings.Join(match, " AND "), prefixed("k.", keys))
}

// prefixed joins names, each with prefix, by commas.
func prefixed(prefix string, names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return strings.Join(out, ", ")
}

// storedKeys selects the natural keys of table's stored rows that a row of the batch's file at path can
// collide with: rows in the batch's occurred_at range (duplicates of an event share its occurred_at; see
// package load), or without a time when the batch has events without one, and with one of the file's event
// IDs. The time range is a constant filter on the scan, so DuckDB skips every row group whose min/max
// statistics lie outside it: rows are appended roughly in time order, so a batch of recent events reads a few
// row groups however many days the table holds. Each side is its own scan (UNION ALL) because an OR of the
// range and IS NULL is not pushed into the scan and reads every row group. The event-ID semi-join then keeps
// only the keys of the batch's own events, so the anti-join's hash table holds no more than the batch.
func storedKeys(table, path string, b load.Batch) string {
	keys := strings.Join(transform.NaturalKeys[table], ", ")
	ids := batchEventsSQL(path)
	var scans []string
	if b.HasOccurred {
		scans = append(scans, fmt.Sprintf("SELECT %s FROM %s WHERE occurred_at BETWEEN %s AND %s AND %s",
			keys, table, timestampSQL(b.MinOccurred), timestampSQL(b.MaxOccurred), ids))
	}
	if b.SearchesNoOccurred() {
		scans = append(scans, fmt.Sprintf("SELECT %s FROM %s WHERE occurred_at IS NULL AND %s", keys, table, ids))
	}
	return strings.Join(scans, " UNION ALL ")
}

// parquetSQL reads the Parquet file at path, with each row's file_row_number when rowNumbers is set. Hive
// partitioning is off: a path with k=v directories must not grow columns.
func parquetSQL(path string, rowNumbers bool) string {
	if rowNumbers {
		return fmt.Sprintf("read_parquet(%s, file_row_number = true, hive_partitioning = false)", quote(path))
	}
	return fmt.Sprintf("read_parquet(%s, hive_partitioning = false)", quote(path))
}

// batchEventsSQL is the condition that a row's event_id is one of the events in the Parquet file at path.
func batchEventsSQL(path string) string {
	return fmt.Sprintf("event_id IN (SELECT event_id FROM %s)", parquetSQL(path, false))
}

// timestampSQL is t as a TIMESTAMPTZ literal, to the microsecond the tables store.
func timestampSQL(t time.Time) string {
	return "TIMESTAMPTZ '" + t.UTC().Format(load.TimestampLayout) + "+00'"
}

// replace deletes, in tx, the rows of every table that belong to the batch's events (matched on event_id), so
// that the batch's rows take their place: a lead list that shrank leaves no stale leads, experience or
// education. It returns the rows deleted per table.
func replace(ctx context.Context, tx *sql.Tx, b load.Batch) (map[string]int64, error) {
	deleted := map[string]int64{}
	events, ok := b.Files[transform.TableEvents]
	if !ok || b.Rows[transform.TableEvents] == 0 {
		return deleted, nil
	}
	for _, table := range transform.Tables {
		r, err := tx.ExecContext(ctx, fmt.Sprintf(`DELETE FROM %s WHERE %s`, table, batchEventsSQL(events)))
		if err != nil {
			return nil, fmt.Errorf("delete replaced %s: %w", table, err)
		}
		deleted[table], _ = r.RowsAffected()
	}
	return deleted, nil
}

// DuckDB's error classes (the prefix of its messages), by what the loader should do about them.
var (
	// dataErrors are about the values of the batch: the loader isolates the events that carry them. An Out of
	// Memory Error is here too: loading the batch in halves is what makes it fit the memory cap.
	dataErrors = []string{"Conversion Error", "Invalid Input Error", "Constraint Error", "Out of Memory Error"}
	// systemicErrors are about the tables (a column or table the statement cannot bind): no batch gets past
	// them, so loads pause.
	systemicErrors = []string{"Binder Error", "Catalog Error"}
)

// classify marks errors that retrying the same statement cannot fix.
func classify(err error) error {
	msg := err.Error()
	for _, c := range systemicErrors {
		if strings.Contains(msg, c) {
			return fmt.Errorf("%w: the warehouse tables do not match what this release writes (see docs/upgrading.md): %w", load.ErrSystemic, err)
		}
	}
	for _, c := range dataErrors {
		if strings.Contains(msg, c) {
			return fmt.Errorf("%w: %w", load.ErrRejected, err)
		}
	}
	return err
}

// Close implements load.Warehouse: it closes the file so other processes can open it.
func (w *Warehouse) Close() error {
	if w.db == nil {
		return nil
	}
	err := w.db.Close()
	w.db = nil
	w.release()
	if err != nil {
		return fmt.Errorf("close duckdb: %w", err)
	}
	return nil
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ErrBusy is returned (wrapped) when the file stayed locked by another process for the whole timeout.
var ErrBusy = errors.New("warehouse file is in use by another process")
