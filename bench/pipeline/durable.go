package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sendpilot-loader/bench/benchkit"
	"time"
)

// durableRun is one run against a serve child.
type durableRun struct {
	res        benchkit.Run
	rss        int64 // peak RSS of the child in bytes
	batches    int64 // batches its scheduled loads committed
	logErrors  int64 // ERROR lines in its log
	vis        visibility
	check      eventCount
	firstError string
}

// measureServe starts serve on a fresh dataDir with the given load schedule, warms it up and runs the
// measured load. With withLoads it follows sampled events into the warehouse meanwhile, and after stopping
// the child runs a final load and counts the events.
func measureServe(ctx context.Context, s runSpec, dataDir, schedule string, withLoads bool) (durableRun, error) {
	name := "serve, loads off"
	if withLoads {
		name = "serve, loads " + schedule
	}
	fmt.Fprintf(os.Stderr, "clients=%d %s: starting\n", s.clients, name)
	ch, err := startServe(s.bin, dataDir, schedule, s.opts.segmentMaxAge, s.opts.serveConfig)
	if err != nil {
		return durableRun{}, err
	}
	defer ch.kill()

	client, closeIdle := newClient(s.clients)
	defer closeIdle()
	tag := fmt.Sprintf("c%dnoload", s.clients)
	if withLoads {
		tag = fmt.Sprintf("c%dload", s.clients)
	}
	ids := newIDSource(tag)

	var (
		smp        sampler
		visDone    = make(chan visibility, 1)
		ingestDone = make(chan struct{})
		dbPath     = filepath.Join(dataDir, "warehouse.duckdb")
	)
	if withLoads {
		tr := newTracker(s.opts.sampleEvery)
		smp = tr
		o := s.opts
		cfg := pollConfig{
			dbPath:   dbPath,
			interval: o.pollInterval,
			timeout:  o.visibleTimeout,
			maxPolls: int((o.warmup+o.duration+clientTimeout+o.visibleTimeout)/o.pollInterval) + 10,
		}
		go func() { visDone <- pollVisible(ctx, cfg, tr, ingestDone) }()
	}

	var warm benchkit.Run
	if s.opts.warmup > 0 {
		warm = drive(ctx, client, s.pool, ids, ch.url, s.loop(s.opts.warmup, 1<<62), nil)
	}
	res := drive(ctx, client, s.pool, ids, ch.url, s.loop(s.opts.duration, s.opts.maxRequests), smp)
	close(ingestDone)
	fmt.Fprintf(os.Stderr, "clients=%d %s: %s\n", s.clients, name, res.Summary())

	r := durableRun{res: res}
	if withLoads {
		fmt.Fprintf(os.Stderr, "clients=%d %s: waiting up to %v for sampled events to be queryable\n", s.clients, name, s.opts.visibleTimeout)
		r.vis = <-visDone
	}
	r.batches, r.logErrors, r.firstError = ch.batches.Load(), ch.loadErrors.Load(), ch.firstErrorLine()
	r.rss, err = ch.stop()
	if err != nil {
		return durableRun{}, err
	}
	if r.firstError != "" {
		fmt.Fprintf(os.Stderr, "clients=%d %s: serve logged %d ERROR lines, the first: %s\n", s.clients, name, r.logErrors, r.firstError)
	}
	if !withLoads {
		return r, interrupted(ctx)
	}

	acked := make(map[string]struct{}, len(warm.IDs)+len(res.IDs))
	for _, ids := range [][]string{warm.IDs, res.IDs} {
		for _, id := range ids {
			acked[id] = struct{}{}
		}
	}
	start := time.Now()
	if err := finalLoad(ctx, s.bin, dataDir); err != nil {
		return durableRun{}, err
	}
	r.check.finalLoad = time.Since(start)
	r.check.acked = len(acked)
	if r.check.distinct, r.check.rows, err = countEvents(ctx, dbPath); err != nil {
		return durableRun{}, err
	}
	fmt.Fprintf(os.Stderr, "clients=%d %s: %d/%d samples seen; final load %v; events: %d distinct of %d rows, %d acknowledged\n",
		s.clients, name, len(r.vis.latencies), r.vis.total, r.check.finalLoad.Round(time.Millisecond),
		r.check.distinct, r.check.rows, r.check.acked)
	return r, interrupted(ctx)
}

// interrupted returns a wrapped ctx.Err(), or nil while ctx is live.
func interrupted(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("measure serve: %w", err)
	}
	return nil
}
