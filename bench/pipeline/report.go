package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"sendpilot-loader/bench/benchkit"
)

// childSettings says where the serve child's other settings come from.
func childSettings(config string) string {
	if config == "" {
		return "other settings default"
	}
	b, err := os.ReadFile(config)
	if err != nil {
		return "other settings from " + config
	}
	return "other settings from " + config + " (" + strings.Join(strings.Fields(string(b)), " ") + ")"
}

// printReport writes the Markdown tables, the machine description and the memory line.
func printReport(w io.Writer, o options, p *pool, levels []levelResult, dirFS string) {
	mode := "Closed loop"
	if o.rate > 0 {
		mode = fmt.Sprintf("Paced at %g requests/s (all clients together)", o.rate)
	}
	fmt.Fprintf(w, "%s, %v per run (max %d requests) after a %v warm-up. Bodies: %d bench corpus events cycled "+
		"(mean %.1f KB, %.1f%% lead extractor/database jobs), each posted with a fresh eventId, HMAC-signed, signature enforced. "+
		"serve child: default DuckDB warehouse, loads %q, segment_max_age %v, %s.\n\n",
		mode, o.duration, o.maxRequests, o.warmup, len(p.rests), p.meanBytes()/1000, 100*float64(p.jobs)/float64(len(p.rests)),
		o.schedule, o.segmentMaxAge, childSettings(o.serveConfig))

	fmt.Fprintln(w, "| clients | target | acks/s | MB/s | p50 | p99 | errors | ÷ no-op acks/s | serve peak RSS | batches loaded by serve |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, lr := range levels {
		ratio := func(r benchkit.Run) string {
			if lr.noop.Rate() <= 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", r.Rate()/lr.noop.Rate())
		}
		row := func(target string, r benchkit.Run, rss, batches string) {
			fmt.Fprintf(w, "| %d | %s | %.0f | %.1f | %s | %s | %d | %s | %s | %s |\n", lr.clients, target, r.Rate(), r.MBPerSec(),
				benchkit.FormatDuration(r.Quantile(0.5)), benchkit.FormatDuration(r.Quantile(0.99)), r.Errors, ratio(r), rss, batches)
		}
		row("serve + loads", lr.loads.res, fmtBytes(lr.loads.rss), strconv.FormatInt(lr.loads.batches, 10))
		if lr.noLoads != nil {
			row("serve, loads off", lr.noLoads.res, fmtBytes(lr.noLoads.rss), "-")
		}
		row("no-op handler", lr.noop, "-", "-")
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "| clients | sampled (every n-th ack) | seen | ack→visible p50 | p99 | max | last sample visible after ingest end | polls / lock conflicts / other failures | final load | events: distinct / rows | distinct acked | check |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, lr := range levels {
		v, c := lr.loads.vis, lr.loads.check
		drained := "not all seen"
		if v.total > 0 && len(v.latencies) == v.total {
			drained = benchkit.FormatDuration(v.drained)
		}
		check := "ok"
		if c.distinct != int64(c.acked) {
			check = "MISMATCH"
		}
		fmt.Fprintf(w, "| %d | %d (%d) | %d | %s | %s | %s | %s | %d / %d / %d | %s | %d / %d | %d | %s |\n", lr.clients,
			v.total, o.sampleEvery, len(v.latencies), benchkit.FormatDuration(benchkit.Quantile(v.latencies, 0.5)), benchkit.FormatDuration(benchkit.Quantile(v.latencies, 0.99)),
			benchkit.FormatDuration(benchkit.Quantile(v.latencies, 1)), drained, v.polls, v.conflicts, v.failures, benchkit.FormatDuration(c.finalLoad),
			c.distinct, c.rows, c.acked, check)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Ack→visible: first warehouse query (read-only, every %v) that found the event minus its 2xx; an upper bound by up to one poll. "+
		"Check: count(DISTINCT event_id) in events after SIGTERM and a final `load` = distinct acknowledged IDs (warm-up included).\n\n", o.pollInterval)
	fmt.Fprintf(w, "Machine: %d CPUs (runtime.NumCPU), %s/%s, %s, %s; --dir file system: %s; load average at end: %s.\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, benchkit.CPUModel(), runtime.Version(), dirFS, benchkit.LoadAverage())
	fmt.Fprintf(w, "Bench process (clients, %.0f MB body pool, no-op server, warehouse polls): peak RSS (VmHWM) %s.\n",
		float64(p.totalSize)/1e6, selfPeakRSS())
}

// fmtBytes prints n bytes in MiB, or "unknown" for 0.
func fmtBytes(n int64) string {
	if n <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// selfPeakRSS returns VmHWM from /proc/self/status, or "unknown".
func selfPeakRSS() string {
	v := benchkit.ProcField("/proc/self/status", "VmHWM")
	kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		return "unknown"
	}
	return fmtBytes(kb << 10)
}
