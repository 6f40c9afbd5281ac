package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// printReport writes the Markdown tables, the machine description and the memory line.
func printReport(w io.Writer, o options, p *pool, levels []levelResult, dirFS string) {
	mode := "Closed loop"
	if o.rate > 0 {
		mode = fmt.Sprintf("Paced at %g requests/s (all clients together)", o.rate)
	}
	fmt.Fprintf(w, "%s, %v per run (max %d requests) after a %v warm-up. Bodies: %d bench corpus events cycled "+
		"(mean %.1f KB, %.1f%% lead extractor/database jobs), each posted with a fresh eventId, HMAC-signed, signature enforced. "+
		"serve child: default DuckDB warehouse, loads %q, segment_max_age %v, other settings default.\n\n",
		mode, o.duration, o.maxRequests, o.warmup, len(p.rests), p.meanBytes()/1000, 100*float64(p.jobs)/float64(len(p.rests)),
		o.schedule, o.segmentMaxAge)

	fmt.Fprintln(w, "| clients | target | acks/s | MB/s | p50 | p99 | errors | ÷ no-op acks/s | serve peak RSS | batches loaded by serve |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, lr := range levels {
		ratio := func(r result) string {
			if lr.noop.rate() <= 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", r.rate()/lr.noop.rate())
		}
		row := func(target string, r result, rss, batches string) {
			fmt.Fprintf(w, "| %d | %s | %.0f | %.1f | %s | %s | %d | %s | %s | %s |\n", lr.clients, target, r.rate(), r.mbPerSec(),
				fmtDuration(r.quantile(0.5)), fmtDuration(r.quantile(0.99)), r.errors, ratio(r), rss, batches)
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
			drained = fmtDuration(v.drained)
		}
		check := "ok"
		if c.distinct != int64(c.acked) {
			check = "MISMATCH"
		}
		fmt.Fprintf(w, "| %d | %d (%d) | %d | %s | %s | %s | %s | %d / %d / %d | %s | %d / %d | %d | %s |\n", lr.clients,
			v.total, o.sampleEvery, len(v.latencies), fmtDuration(quantile(v.latencies, 0.5)), fmtDuration(quantile(v.latencies, 0.99)),
			fmtDuration(quantile(v.latencies, 1)), drained, v.polls, v.conflicts, v.failures, fmtDuration(c.finalLoad),
			c.distinct, c.rows, c.acked, check)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Ack→visible: first warehouse query (read-only, every %v) that found the event minus its 2xx; an upper bound by up to one poll. "+
		"Check: count(DISTINCT event_id) in events after SIGTERM and a final `load` = distinct acknowledged IDs (warm-up included).\n\n", o.pollInterval)
	fmt.Fprintf(w, "Machine: %d CPUs (runtime.NumCPU), %s/%s, %s, %s; --dir file system: %s; load average at end: %s.\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cpuModel(), runtime.Version(), dirFS, loadAverage())
	fmt.Fprintf(w, "Bench process (clients, %.0f MB body pool, no-op server, warehouse polls): peak RSS (VmHWM) %s.\n",
		float64(p.totalSize)/1e6, selfPeakRSS())
}

// fmtDuration prints microseconds below a millisecond, milliseconds below a second, seconds above.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// fmtBytes prints n bytes in MiB, or "unknown" for 0.
func fmtBytes(n int64) string {
	if n <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// prepareDir creates dir and returns the topmost directory it had to create, or "" if dir already existed, so
// that cleanup removes exactly what the benchmark created and nothing that was there before.
func prepareDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolve bench dir: %w", err)
	}
	created := ""
	for p := abs; ; p = filepath.Dir(p) {
		_, err := os.Stat(p)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("stat bench dir: %w", err)
		}
		created = p
		if filepath.Dir(p) == p {
			break
		}
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", fmt.Errorf("create bench dir: %w", err)
	}
	return created, nil
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		return v
	}
	return "unknown CPU"
}

// loadAverage returns the 1, 5 and 15 minute load averages from /proc/loadavg, or "unknown".
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// selfPeakRSS returns VmHWM from /proc/self/status, or "unknown".
func selfPeakRSS() string {
	v := procField("/proc/self/status", "VmHWM")
	kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		return "unknown"
	}
	return fmtBytes(kb << 10)
}

// procField returns the value of the first "key: value" line of a /proc file, or "" if there is none.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// mountUnescaper undoes the octal escapes /proc/mounts uses in mount points.
var mountUnescaper = strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)

// fsType returns the type and device of the file system holding dir, from the longest matching mount point
// in /proc/mounts, or "unknown".
func fsType(dir string) string {
	path, err := filepath.Abs(dir)
	if err == nil {
		path, err = filepath.EvalSymlinks(path)
	}
	data, readErr := os.ReadFile("/proc/mounts")
	if err != nil || readErr != nil {
		return "unknown"
	}
	best, found := "", "unknown"
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := mountUnescaper.Replace(f[1])
		inside := mp == "/" || path == mp || strings.HasPrefix(path, mp+"/")
		if inside && len(mp) >= len(best) {
			best, found = mp, fmt.Sprintf("%s (%s on %s)", f[2], f[0], mp)
		}
	}
	return found
}
