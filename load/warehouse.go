// Package load moves sealed buffer segments into a warehouse in batches, exactly once from the analyst's
// point of view, and keeps the state that makes every step of a batch resumable after a crash.
//
// A batch goes through these steps, each recorded in its manifest before the next starts:
//
//	planned      the sealed segments that form the batch are named
//	transformed  their Parquet files are written (transform.Files)
//	loaded       the warehouse has merged them on the natural keys
//	archived     the segments are gzip'd into archive/ and removed from buffer/
//
// Invariants:
//   - A sealed segment leaves buffer/ only after the warehouse commit of the batch holding it.
//   - Every step is idempotent: a crash anywhere resumes the unfinished batch at its recorded step.
//   - The natural keys (event_id; event_id, lead_index; event_id, lead_index, position) are the only dedup
//     rule, shared by scheduled loads and backfills; the first row stored for a key wins.
//   - Duplicates of an event share its occurred_at (SendPilot's timestamp is when the event happened, and the
//     transform derives occurred_at from it alone), so a warehouse looks for a batch's stored duplicates only
//     in the batch's occurred_at range and, when the batch has events without one, among rows without one.
//     A release that changes how occurred_at is derived must say so in docs/upgrading.md: rows stored before
//     it would no longer be found as duplicates of a resend.
//   - At most one process runs batches for a data directory at a time (a lock file).
package load

import (
	"context"
	"errors"
	"time"

	"sendpilot-loader/transform"
)

// Batch is what a warehouse loads: one Parquet file per table, all from the same transform run.
type Batch struct {
	// ID is unique per data directory and stable across retries; warehouses derive job IDs from it.
	ID string
	// Files maps a table name (transform.Tables) to its Parquet file.
	Files map[string]string
	// Rows maps a table name to the rows in its file.
	Rows map[string]int64
	// HasOccurred is true when some event had an occurred_at; MinOccurred and MaxOccurred then bound them, to
	// prune the partitions (or row groups) a merge reads. A bound may be the zero time.Time (0001-01-01, a
	// storable time), so only HasOccurred says whether there is a range. Pruning is exact by the package's
	// occurred_at invariant (duplicates of an event share it).
	HasOccurred              bool
	MinOccurred, MaxOccurred time.Time
	// HasNullOccurred is true when some event had no occurred_at (its rows live in the NULL partition).
	HasNullOccurred bool
	// Replace makes the batch's rows replace the stored ones instead of being skipped when their key is
	// already there (backfill --replace): every row of every table whose event_id is one of the batch's events
	// is deleted, and the batch's rows are inserted, in one commit on DuckDB. Replacing is idempotent: loading
	// the batch again leaves the same rows, and a key is never stored twice.
	Replace bool
}

// SearchesNoOccurred reports whether a warehouse looking for the batch's stored duplicates must also search
// the rows without an occurred_at: when some event of the batch has none, or none has one.
func (b Batch) SearchesNoOccurred() bool { return b.HasNullOccurred || !b.HasOccurred }

// NewBatch is the batch of one transform run's output: its files, row counts and occurred_at range.
func NewBatch(id string, res transform.Result) Batch {
	b := Batch{ID: id, Files: map[string]string{}, Rows: map[string]int64{}}
	b.MinOccurred, b.MaxOccurred, b.HasOccurred, b.HasNullOccurred = OccurredRange(res.Counts)
	for _, t := range res.Tables {
		b.Files[t.Table], b.Rows[t.Table] = t.Path, t.Rows
	}
	return b
}

// LoadResult says what a load did.
type LoadResult struct {
	// Inserted maps a table name to the rows that were new to the warehouse; rows whose key was already
	// there are not counted. Warehouses that cannot tell report -1.
	Inserted map[string]int64
	// Replaced maps a table name to the stored rows a Replace batch deleted before inserting its own (nil for
	// other batches; -1 when the warehouse cannot tell).
	Replaced map[string]int64
	// BytesRead maps a table name to the bytes the warehouse says the statement that merged the batch into that
	// table read (BigQuery: the merge job's statistics.query.totalBytesProcessed, what on-demand pricing bills
	// before rounding). It is what a batch costs in warehouse reads, and it stays bounded only while the merge
	// reads the batch's partitions, not the whole table. A table with rows in the batch has an entry, -1 when
	// the job's statistics do not say; nil when the warehouse cannot tell at all (DuckDB).
	BytesRead map[string]int64
}

// Warehouse is where batches go. Implementations: load/duckdb (the embedded default) and load/bigquery.
type Warehouse interface {
	// Name identifies the warehouse in logs and status output.
	Name() string
	// Ensure creates the tables (and dataset) if they are missing and migrates existing ones to this release's
	// schema: missing nullable columns are added, the views recreated and the schema version recorded. A
	// difference it cannot migrate safely is a *SchemaDifference (wrapping ErrSystemic), never ErrRejected.
	// It is idempotent.
	Ensure(ctx context.Context) error
	// Load makes the batch's rows part of the final tables exactly once: rows whose natural key is already
	// there are left alone, and duplicates inside the batch count once. Loading the same batch again, after a
	// crash at any point, changes nothing more. Errors wrapping ErrRejected are permanent for this batch. Load
	// checks (and migrates) the schema first, as Ensure does, and names every column it writes, so the column
	// order of the tables does not matter.
	Load(ctx context.Context, b Batch) (LoadResult, error)
	// Close releases the warehouse's resources. A DuckDB warehouse holds its file open only between Ensure or
	// Load and Close.
	Close() error
}

// Errors a Warehouse returns fall in three classes, which decide what the loader does:
//
//   - wrapping ErrRejected: the warehouse refused the batch's own data (a value it cannot store). Retrying the
//     same rows cannot fix it; the loader isolates the events that carry it so the rest of the batch loads.
//   - wrapping ErrSystemic: the warehouse cannot load anything until a person acts (a schema difference,
//     missing permissions or dataset, a location mismatch, an exhausted quota). It is not about the data, so
//     nothing is moved aside: the loader pauses loads, says why (status, /readyz, a metric) and tries again on
//     its next run.
//   - anything else is transient (an outage, a timeout, a rate limit, a concurrent-update conflict): retried
//     with backoff, and the batch stays pending for the next run.

// ErrRejected marks an error about the batch's data that retrying the same rows cannot fix.
var ErrRejected = errors.New("batch rejected by the warehouse")

// ErrSystemic marks an error that no batch can get past until an operator fixes the warehouse or its
// configuration; loads pause and no data moves.
var ErrSystemic = errors.New("warehouse cannot load until an operator acts")
