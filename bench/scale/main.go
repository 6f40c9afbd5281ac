// Command scale measures whether loading stays cheap as the DuckDB warehouse grows, and how a backfill
// compares with DuckDB's own plain insert of the same Parquet files, all with the real sendpilot-loader
// binary at default settings (the default DuckDB warehouse, memory limits from configs.Defaults).
//
// It builds sendpilot-loader into --work-dir/bin, then:
//
//  1. Backfill next to a plain insert: generates --backfill-bytes of bare corpus events (bench/corpus, seed
//     --seed) and runs "sendpilot-loader backfill" of them into a fresh data directory; converts the same file
//     with transform.Files into the four table Parquet files and runs, in a child process of its own (this
//     program re-executed), DuckDB's plain "INSERT INTO t BY NAME SELECT * FROM read_parquet(...)" of each into
//     a fresh database with the tables of sql/duckdb/tables.sql and the threads and memory_limit the loader
//     opens DuckDB with. Both warehouses must end up with the Parquet files' row counts.
//  2. One warehouse per --sizes entry, holding that many bytes of the same corpus (the 1 GB warehouse is the
//     first 1 GB of the 5 GB one: every event ID is distinct), built with "sendpilot-loader backfill". A built
//     warehouse is kept in --work-dir/warehouses under a name made of seed, size and a hash of
//     sql/duckdb/tables.sql, and reused by later runs (the output says which were reused); --rebuild builds
//     them again.
//  3. Two sets of pending buffer segments, written with the extract/buffer writer as serve writes them
//     (envelopes, CRC-framed format v2, sealed): --batch-events events of seed --seed+1 (a scheduled load's
//     batch) and --catchup-bytes of seed --seed+2 (the backlog an outage leaves). Their event IDs are new to
//     every warehouse and their occurred_at a month after the corpus starts, past every stored event, as new
//     deliveries are.
//  4. For each warehouse and each set: copies the warehouse and the segments into a fresh data directory and
//     runs "sendpilot-loader load" (the catch-up path: it drains every pending segment, batch after batch),
//     then checks that the events table grew by exactly the set's events.
//
// Every measured step is a child process with a timeout (--child-timeout); its wall time comes from the
// parent and its peak RSS from its rusage. Ratios are to the smallest warehouse (the empty one by default).
// Keep --work-dir on the disk you mean to measure: /tmp is often a tmpfs.
//
// Usage:
//
//	go run ./bench/scale [--sizes 0,1GB,5GB] [--batch-events 1000] [--catchup-bytes 250MB] [--backfill-bytes 1GB]
//	go run ./bench/scale --sizes 0,50MB --catchup-bytes 20MB --backfill-bytes 50MB   # a quick look
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"sendpilot-loader/configs"
)

// childEnvVar, set to childPlainInsert in a child's environment, makes this program the plain insert child
// instead of the benchmark.
const (
	childEnvVar      = "SENDPILOT_BENCH_SCALE_CHILD"
	childPlainInsert = "plain-insert"
)

// Bounds on the flags, so that every loop of the benchmark is bounded.
const (
	maxSizes       = 8
	maxRuns        = 10
	maxBatchEvents = 1_000_000
)

// options are the command-line flags.
type options struct {
	workDir       string
	sizes         []size // ascending, distinct
	batchEvents   int
	catchupBytes  int64
	backfillBytes int64
	seed          uint64
	runs          int
	childTimeout  time.Duration
	keep          bool
	rebuild       bool
}

// size is a warehouse size: the bytes of corpus NDJSON backfilled into it, and the text that named it.
type size struct {
	bytes int64
	label string
}

func main() {
	if os.Getenv(childEnvVar) == childPlainInsert {
		os.Exit(childMain(os.Args[1:]))
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench/scale:", err)
		stop()
		os.Exit(1)
	}
}

// parseFlags reads the command line into options.
func parseFlags(args []string) (options, error) {
	o := options{}
	fl := flag.NewFlagSet("scale", flag.ContinueOnError)
	fl.StringVar(&o.workDir, "work-dir", "./bench-data/scale", "directory for the binary, inputs, cached warehouses and data directories (not /tmp: it may be a tmpfs)")
	sizes := fl.String("sizes", "0,1GB,5GB", "comma-separated warehouse sizes: bytes of corpus NDJSON each holds (1GB = 10^9 bytes)")
	fl.IntVar(&o.batchEvents, "batch-events", 1000, "events in the fixed scheduled-load batch")
	catchup := configs.ByteSize(250e6)
	fl.Var(&catchup, "catchup-bytes", "bytes of envelopes in the pending catch-up segments (default 250MB)")
	backfill := configs.ByteSize(1e9)
	fl.Var(&backfill, "backfill-bytes", "bytes of corpus NDJSON in the backfill compared with DuckDB's plain insert (default 1GB)")
	fl.Uint64Var(&o.seed, "seed", 1, "corpus seed of the warehouses and the backfill; the batch uses seed+1, the catch-up seed+2")
	fl.IntVar(&o.runs, "runs", 1, "runs of each batch and catch-up load per warehouse; the fastest is reported")
	fl.DurationVar(&o.childTimeout, "child-timeout", 30*time.Minute, "kill any child process (backfill, load, plain insert) after this long")
	fl.BoolVar(&o.keep, "keep", false, "keep the generated inputs and every data directory (cached warehouses are always kept)")
	fl.BoolVar(&o.rebuild, "rebuild", false, "build the warehouses again even if cached ones exist")
	if err := fl.Parse(args); err != nil {
		return options{}, err
	}
	if fl.NArg() > 0 {
		return options{}, fmt.Errorf("parse flags: unexpected arguments %q", fl.Args())
	}
	o.catchupBytes, o.backfillBytes = int64(catchup), int64(backfill)
	var err error
	if o.sizes, err = parseSizes(*sizes); err != nil {
		return options{}, err
	}
	switch {
	case o.batchEvents < 1 || o.batchEvents > maxBatchEvents:
		return options{}, fmt.Errorf("parse flags: --batch-events must be in 1..%d", maxBatchEvents)
	case o.catchupBytes < 1 || o.backfillBytes < 1:
		return options{}, errors.New("parse flags: --catchup-bytes and --backfill-bytes must be positive")
	case o.runs < 1 || o.runs > maxRuns:
		return options{}, fmt.Errorf("parse flags: --runs must be in 1..%d", maxRuns)
	case o.childTimeout <= 0:
		return options{}, errors.New("parse flags: --child-timeout must be positive")
	case o.workDir == "":
		return options{}, errors.New("parse flags: --work-dir must not be empty")
	}
	return o, nil
}

// parseSizes reads a comma-separated list of byte sizes into ascending, distinct sizes.
func parseSizes(s string) ([]size, error) {
	var out []size
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		n, err := configs.ParseByteSize(f)
		if err != nil {
			return nil, fmt.Errorf("parse --sizes: %w", err)
		}
		if slices.ContainsFunc(out, func(x size) bool { return x.bytes == int64(n) }) {
			return nil, fmt.Errorf("parse --sizes: %q repeats a size", f)
		}
		label := f
		if n == 0 {
			label = "0 (empty)"
		}
		out = append(out, size{bytes: int64(n), label: label})
	}
	if len(out) > maxSizes {
		return nil, fmt.Errorf("parse --sizes: at most %d sizes", maxSizes)
	}
	slices.SortFunc(out, func(a, b size) int { return cmp.Compare(a.bytes, b.bytes) })
	return out, nil
}

// run measures everything and prints the report to out, progress to progress.
func run(ctx context.Context, o options, out, progress io.Writer) (err error) {
	start := time.Now()
	b, err := newBench(ctx, o, progress)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.cleanup()) }()

	var rep report
	rep.opts = o
	if rep.backfill, err = b.compareBackfill(ctx); err != nil {
		return err
	}
	for _, s := range o.sizes {
		w, err := b.base(ctx, s)
		if err != nil {
			return err
		}
		rep.warehouses = append(rep.warehouses, w)
	}
	if rep.batch, err = b.pending(ctx, kindBatch, o.seed+1, func(st pendingStats) bool { return st.events < int64(o.batchEvents) }); err != nil {
		return err
	}
	if rep.catchup, err = b.pending(ctx, kindCatchup, o.seed+2, func(st pendingStats) bool { return st.bytes < o.catchupBytes }); err != nil {
		return err
	}
	rep.loads = make([][2]loadRun, len(rep.warehouses))
	for r := 1; r <= o.runs; r++ {
		for i, w := range rep.warehouses {
			for k, p := range []pendingSet{rep.batch, rep.catchup} {
				m, err := b.measureLoad(ctx, w, p, r)
				if err != nil {
					return err
				}
				if best := rep.loads[i][k]; best.usage.Elapsed == 0 || m.usage.Elapsed < best.usage.Elapsed {
					rep.loads[i][k] = m
				}
			}
		}
	}
	rep.workFS = b.fsType()
	rep.total = time.Since(start)
	printReport(out, rep)
	return nil
}
