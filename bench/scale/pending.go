package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"sendpilot-loader/bench/corpus"
	"sendpilot-loader/configs"
	"sendpilot-loader/extract/buffer"
	"sendpilot-loader/extract/envelope"
	"sendpilot-loader/transform"
)

// The two sets of pending segments every warehouse loads.
const (
	kindBatch   = "batch"    // a scheduled load's batch: --batch-events events
	kindCatchup = "catch-up" // a backlog: --catchup-bytes of events
)

// appenders is how many goroutines append to the buffer at once, so that records share fsyncs as concurrent
// deliveries do in serve.
const appenders = 16

// pendingStats is what a pending set holds so far.
type pendingStats struct {
	events int64
	bytes  int64 // envelope lines, with their newlines
}

// pendingSet is a buffer directory of sealed segments, written once and copied into each data directory.
type pendingSet struct {
	kind         string
	seed         uint64
	dir          string
	stats        pendingStats
	segments     int
	segmentBytes int64 // the segment files, framing included
}

// bufferOptions are the buffer settings of "serve" at default configuration.
func bufferOptions() buffer.Options {
	cfg := configs.Defaults()
	return buffer.Options{
		SegmentMaxBytes: int64(cfg.Buffer.SegmentMaxBytes),
		SegmentMaxAge:   cfg.Buffer.SegmentMaxAge,
		RecordTime:      envelope.ReceivedAt,
	}
}

// pending writes envelopes of corpus seed seed into a new buffer directory with the buffer's own writer (as
// the receiver does: concurrent Appends, group commit, sealed on Close) while more says the set needs more.
func (b *bench) pending(ctx context.Context, kind string, seed uint64, more func(pendingStats) bool) (pendingSet, error) {
	dir := filepath.Join(b.inputDir, fmt.Sprintf("pending-%s-seed%d", kind, seed))
	if err := os.RemoveAll(dir); err != nil {
		return pendingSet{}, fmt.Errorf("clear pending dir: %w", err)
	}
	b.logf("writing the %s segments to %s", kind, dir)
	buf, err := buffer.Open(dir, bufferOptions())
	if err != nil {
		return pendingSet{}, fmt.Errorf("open pending buffer: %w", err)
	}
	lines := make(chan []byte, appenders)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range appenders {
		wg.Go(func() {
			for line := range lines {
				if err := buf.Append(ctx, line); err != nil {
					mu.Lock()
					firstErr = errors.Join(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	// New deliveries are newer than what the warehouse holds: the largest base warehouse's events span about
	// five days from the corpus's start, so these begin a month after it.
	g := corpus.New(seed, true).StartAt(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC))
	set := pendingSet{kind: kind, seed: seed, dir: dir}
	for more(set.stats) && ctx.Err() == nil {
		line, _ := g.Next(nil) // a fresh slice per line: Append may hold it until it returns
		set.stats.events++
		set.stats.bytes += int64(len(line)) + 1
		lines <- line
	}
	close(lines)
	wg.Wait()
	if err := errors.Join(firstErr, ctx.Err(), buf.Close()); err != nil {
		return pendingSet{}, fmt.Errorf("write pending segments: %w", err)
	}
	segs, err := buffer.OpenReader(dir, bufferOptions()).Pending()
	if err != nil {
		return pendingSet{}, fmt.Errorf("list pending segments: %w", err)
	}
	set.segments = len(segs)
	for _, s := range segs {
		set.segmentBytes += fileSize(s)
	}
	return set, nil
}

// loadRun is one measured "sendpilot-loader load" of a pending set into a copy of a warehouse.
type loadRun struct {
	loaderRun
	inserted int64 // events the load added
}

// eventsIndex is the events table's position in transform.Tables.
var eventsIndex = slices.Index(transform.Tables, transform.TableEvents)

// measureLoad copies w and p into a fresh data directory, runs "sendpilot-loader load" on it and checks
// that it drained the buffer and added exactly p's events.
func (b *bench) measureLoad(ctx context.Context, w warehouse, p pendingSet, run int) (loadRun, error) {
	name := fmt.Sprintf("load-%s-%s-run%d", sizeName(w.size.bytes), p.kind, run)
	dir, err := b.freshDir(name)
	if err != nil {
		return loadRun{}, err
	}
	cfg := layout(dir)
	if err := copyFile(w.path, cfg.DuckDBFile()); err != nil {
		return loadRun{}, err
	}
	if err := copyDir(p.dir, cfg.BufferDir()); err != nil {
		return loadRun{}, err
	}
	b.logf("run %d: load of the %s (%d events) into the %s warehouse", run, p.kind, p.stats.events, w.size.label)
	r, err := b.loader(ctx, name, "load", "--data-dir", dir)
	if err != nil {
		return loadRun{}, err
	}
	rows, err := tableRows(ctx, cfg.DuckDBFile())
	if err != nil {
		return loadRun{}, err
	}
	m := loadRun{loaderRun: r, inserted: rows[eventsIndex] - w.rows[eventsIndex]}
	if m.inserted != p.stats.events {
		return m, fmt.Errorf("check %s: the load added %d events to the %s warehouse, want %d", name, m.inserted, w.size.label, p.stats.events)
	}
	left, err := buffer.OpenReader(cfg.BufferDir(), bufferOptions()).Pending()
	if err != nil {
		return m, fmt.Errorf("list segments left: %w", err)
	}
	if len(left) > 0 {
		return m, fmt.Errorf("check %s: %d segments still pending after the load", name, len(left))
	}
	b.logf("  %.2f s, peak RSS %.0f MiB, %d batches", r.usage.Elapsed.Seconds(), mib(r.usage.PeakRSS), r.batches)
	return m, b.drop(dir)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
