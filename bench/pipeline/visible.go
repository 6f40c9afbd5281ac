package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" database/sql driver
)

// sample is an acknowledged event followed until it is queryable.
type sample struct {
	id    string
	acked time.Time
}

// tracker keeps every n-th acknowledged event for the poller; it implements sampler.
type tracker struct {
	every  int64
	n      atomic.Int64
	mu     sync.Mutex
	queued []sample
}

func newTracker(every int64) *tracker { return &tracker{every: every} }

// acked implements sampler.
func (t *tracker) acked(id string, at time.Time) {
	if t.n.Add(1)%t.every != 0 {
		return
	}
	t.mu.Lock()
	t.queued = append(t.queued, sample{id: id, acked: at})
	t.mu.Unlock()
}

// take returns the samples queued since the last call.
func (t *tracker) take() []sample {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.queued
	t.queued = nil
	return q
}

// visibility is what the poller saw.
type visibility struct {
	total     int             // sampled events
	latencies []time.Duration // ack→visible of the sampled events seen, sorted
	polls     int             // queries that ran
	conflicts int             // polls that met the loader's lock
	failures  int             // polls that failed otherwise (before the first load: no file, no table)
	lastErr   string
	drained   time.Duration // from the end of ingest until the last sample was seen; 0 if not all were
}

// pollConfig bounds the poller.
type pollConfig struct {
	dbPath   string
	interval time.Duration
	timeout  time.Duration // after ingest ends
	maxPolls int
}

// pollVisible queries the warehouse every interval for the sampled events not seen yet, until ingest has
// ended (ingestDone closed) and every sample was seen, or timeout after ingest ended, or maxPolls ticks.
func pollVisible(ctx context.Context, cfg pollConfig, t *tracker, ingestDone <-chan struct{}) visibility {
	var (
		v        visibility
		pending  = map[string]time.Time{}
		ended    time.Time
		interval = time.NewTicker(cfg.interval)
	)
	defer interval.Stop()
	for range cfg.maxPolls {
		select {
		case <-ctx.Done():
			return v.finish()
		case <-interval.C:
		}
		if ended.IsZero() {
			select {
			case <-ingestDone:
				ended = time.Now()
			default:
			}
		}
		for _, s := range t.take() {
			pending[s.id] = s.acked
			v.total++
		}
		if !ended.IsZero() && (len(pending) == 0 || time.Since(ended) > cfg.timeout) {
			if len(pending) == 0 && v.total > 0 {
				v.drained = time.Since(ended)
			}
			return v.finish()
		}
		if len(pending) == 0 {
			continue
		}
		found, at, err := queryVisible(ctx, cfg.dbPath, slices.Collect(maps.Keys(pending)))
		switch {
		case isLockConflict(err):
			v.conflicts++
			continue
		case err != nil:
			v.failures++
			v.lastErr = err.Error()
			continue
		}
		v.polls++
		for _, id := range found {
			if acked, ok := pending[id]; ok {
				v.latencies = append(v.latencies, at.Sub(acked))
				delete(pending, id)
			}
		}
	}
	return v.finish()
}

// finish sorts the latencies.
func (v visibility) finish() visibility {
	slices.Sort(v.latencies)
	return v
}

// queryVisible opens the warehouse read-only and returns which of ids are in events, and when the query
// started: the events it finds were committed before then.
func queryVisible(ctx context.Context, path string, ids []string) ([]string, time.Time, error) {
	db, err := openReadOnly(ctx, path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer db.Close()
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = "'" + strings.ReplaceAll(id, "'", "''") + "'"
	}
	at := time.Now()
	rows, err := db.QueryContext(ctx, "SELECT event_id FROM events WHERE event_id IN ("+strings.Join(quoted, ",")+")")
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, time.Time{}, fmt.Errorf("scan event_id: %w", err)
		}
		found = append(found, id)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("read events: %w", err)
	}
	return found, at, nil
}

// openReadOnly opens the DuckDB file read-only, failing at once (not waiting) while a loader holds it. It
// does not create a missing file.
func openReadOnly(ctx context.Context, path string) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("stat warehouse: %w", err)
	}
	db, err := sql.Open("duckdb", path+"?access_mode=READ_ONLY")
	if err != nil {
		return nil, fmt.Errorf("open warehouse: %w", err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open warehouse: %w", err)
	}
	return db, nil
}

// isLockConflict reports whether DuckDB refused the file because another process holds it.
func isLockConflict(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "Could not set lock") || strings.Contains(err.Error(), "Conflicting lock"))
}

// eventCount is the final correctness check of one run.
type eventCount struct {
	acked     int   // distinct acknowledged event IDs
	distinct  int64 // count(DISTINCT event_id) in events
	rows      int64 // count(*) in events
	finalLoad time.Duration
}

// countEvents counts the rows and distinct event IDs in events, retrying for up to a minute while another
// process holds the file.
func countEvents(ctx context.Context, path string) (distinct, rows int64, err error) {
	deadline := time.Now().Add(time.Minute)
	for attempt := 0; attempt < 300; attempt++ {
		distinct, rows, err = countOnce(ctx, path)
		if !isLockConflict(err) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("count events: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil // nothing was ever loaded
	}
	return distinct, rows, err
}

// countOnce runs the count query once.
func countOnce(ctx context.Context, path string) (int64, int64, error) {
	db, err := openReadOnly(ctx, path)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	var distinct, rows int64
	if err := db.QueryRowContext(ctx, "SELECT count(DISTINCT event_id), count(*) FROM events").Scan(&distinct, &rows); err != nil {
		return 0, 0, fmt.Errorf("count events: %w", err)
	}
	return distinct, rows, nil
}
