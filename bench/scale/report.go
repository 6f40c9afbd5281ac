package main

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"sendpilot-loader/bench/benchkit"
	"sendpilot-loader/transform"
)

// goalRatio is the bound on a load's time at the largest warehouse, as a multiple of the empty one's.
const goalRatio = 1.5

// report is everything one run measured.
type report struct {
	opts           options
	backfill       backfillResult
	warehouses     []warehouse // ascending size; the first is the reference of every ratio
	batch, catchup pendingSet
	loads          [][2]loadRun // per warehouse: the batch, the catch-up (fastest of --runs)
	workFS         string
	total          time.Duration
}

// ratio formats a/b as "1.23×", or "-" when b is not positive.
func ratio(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// printReport writes the Markdown tables and the lines describing inputs, settings and machine.
func printReport(w io.Writer, r report) {
	ref := r.warehouses[0]
	refLoads := r.loads[0]
	fmt.Fprintf(w, "Loads into a warehouse that grows: `sendpilot-loader load` (default settings, default DuckDB warehouse) of pending sealed "+
		"buffer segments, in a fresh data dir holding a copy of the warehouse; the fastest of %d run(s). "+
		"Batch: %d events, %.1f MB of envelopes in %d segment(s). Catch-up: %d events, %.1f MB in %d segment(s). "+
		"× is the ratio to the %s warehouse (goal at the largest: ≤ %.1f×).\n\n",
		r.opts.runs, r.batch.stats.events, float64(r.batch.segmentBytes)/1e6, r.batch.segments,
		r.catchup.stats.events, float64(r.catchup.segmentBytes)/1e6, r.catchup.segments, ref.size.label, goalRatio)
	fmt.Fprintln(w, "| warehouse | events stored | file MB | batch s | × | batch peak RSS MiB | × | catch-up s | × | catch-up MB/s | catch-up peak RSS MiB | × | catch-up batches |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i, wh := range r.warehouses {
		b, c := r.loads[i][0].usage, r.loads[i][1].usage
		fmt.Fprintf(w, "| %s | %d | %.1f | %.2f | %s | %.0f | %s | %.2f | %s | %.1f | %.0f | %s | %d |\n",
			wh.size.label, wh.rows[eventsIndex], float64(wh.fileBytes)/1e6,
			b.Elapsed.Seconds(), ratio(b.Elapsed.Seconds(), refLoads[0].usage.Elapsed.Seconds()),
			mib(b.PeakRSS), ratio(float64(b.PeakRSS), float64(refLoads[0].usage.PeakRSS)),
			c.Elapsed.Seconds(), ratio(c.Elapsed.Seconds(), refLoads[1].usage.Elapsed.Seconds()),
			float64(r.catchup.segmentBytes)/1e6/c.Elapsed.Seconds(),
			mib(c.PeakRSS), ratio(float64(c.PeakRSS), float64(refLoads[1].usage.PeakRSS)), r.loads[i][1].batches)
	}
	last := len(r.warehouses) - 1
	if last > 0 {
		verdict := func(k int) string {
			x := r.loads[last][k].usage.Elapsed.Seconds() / refLoads[k].usage.Elapsed.Seconds()
			if x <= goalRatio {
				return fmt.Sprintf("%.2f× (within %.1f×)", x, goalRatio)
			}
			return fmt.Sprintf("%.2f× (over %.1f×)", x, goalRatio)
		}
		fmt.Fprintf(w, "\nAt %s against %s: batch %s, catch-up %s.\n", r.warehouses[last].size.label, ref.size.label, verdict(0), verdict(1))
	}
	fmt.Fprintln(w)
	for _, wh := range r.warehouses {
		fmt.Fprintf(w, "- warehouse %s: %s; %s; %s\n", wh.size.label, describe(wh.rows), wh.origin, wh.path)
	}
	fmt.Fprintf(w, "- Warehouses hold bench/corpus seed %d (bare events, backfilled; each size a prefix of the larger); the batch is seed %d, the catch-up seed %d, "+
		"as envelopes written by the extract/buffer writer (CRC-framed, sealed). Their event IDs are new to every warehouse; their occurred_at begins a month after the corpus, past every stored event, as new deliveries are.\n\n",
		r.opts.seed, r.batch.seed, r.catchup.seed)

	bf := r.backfill
	mbps := func(u benchkit.Usage) float64 { return float64(bf.inputBytes) / 1e6 / u.Elapsed.Seconds() }
	fmt.Fprintf(w, "Backfill of %.1f MB of corpus NDJSON into a fresh DuckDB warehouse, next to DuckDB's plain insert of the same rows, in the same run:\n\n", float64(bf.inputBytes)/1e6)
	fmt.Fprintf(w, "| run | seconds | MB/s of NDJSON | CPU s | peak RSS MiB | %s |\n", strings.Join(transform.Tables, " | "))
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|%s\n", strings.Repeat("---:|", len(transform.Tables)))
	row := func(name string, u benchkit.Usage) {
		fmt.Fprintf(w, "| %s | %.2f | %.1f | %.2f | %.0f |", name, u.Elapsed.Seconds(), mbps(u), u.CPU.Seconds(), mib(u.PeakRSS))
		for _, n := range bf.rows {
			fmt.Fprintf(w, " %d |", n)
		}
		fmt.Fprintln(w)
	}
	row("`sendpilot-loader backfill`", bf.loader)
	row(fmt.Sprintf("DuckDB `INSERT INTO t BY NAME SELECT * FROM read_parquet(…)`, %.1f MB of Parquet", float64(bf.parquetBytes)/1e6), bf.plain)
	fmt.Fprintf(w, "\nBackfill ÷ plain insert: time %s, peak RSS %s. The plain insert starts from the four Parquet files "+
		"transform.Files wrote from the same input (%.2f s in the bench process, not counted); it runs in its own process with "+
		"DuckDB settings %s (the threads and memory_limit the loader opens DuckDB with, load/duckdb openForLoad), DuckDB's default row groups, "+
		"one autocommit INSERT per table into the tables of sql/duckdb/tables.sql, no dedup.\n\n",
		ratio(bf.loader.Elapsed.Seconds(), bf.plain.Elapsed.Seconds()), ratio(float64(bf.loader.PeakRSS), float64(bf.plain.PeakRSS)),
		bf.transform.Seconds(), strings.ReplaceAll(plainSettings(), "&", ", "))

	fmt.Fprintf(w, "Machine: %s, %d CPUs (runtime.NumCPU), %s/%s, %s, %s memory; --work-dir file system: %s; load average at end: %s. "+
		"Total time %s, run at %s.\n", benchkit.CPUModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(),
		memTotal(), r.workFS, benchkit.LoadAverage(), r.total.Round(time.Second), time.Now().UTC().Format(time.RFC3339))
}

// memTotal is MemTotal from /proc/meminfo in GiB, or "unknown".
func memTotal() string {
	v := benchkit.ProcField("/proc/meminfo", "MemTotal")
	kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}
