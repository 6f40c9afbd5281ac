package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"sendpilot-loader/configs"
	"sendpilot-loader/load"
	"sendpilot-loader/transform"
)

// stringsFlag collects a repeatable, comma-separated string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, strings.Split(v, ",")...); return nil }

func runBackfill(ctx context.Context, env *environment, args []string) int {
	var (
		since, until     string
		types            stringsFlag
		dryRun, restart  bool
		replace, overlap bool
		maxErrors        int64
		partBytes        configs.ByteSize
	)
	cfg, paths, code, ok := parseConfig(env, "backfill", "backfill [flags] PATH...", args, func(fs *flag.FlagSet, c *configs.Config) {
		configs.BindCommon(fs, c)
		configs.BindLoad(fs, c)
		fs.StringVar(&since, "since", "", "only events at or after this time (RFC 3339 or YYYY-MM-DD)")
		fs.StringVar(&until, "until", "", "only events before this time (RFC 3339 or YYYY-MM-DD)")
		fs.Var(&types, "event-type", "only this event name, old or new (repeatable)")
		fs.BoolVar(&dryRun, "dry-run", false, "transform and count, load nothing")
		fs.BoolVar(&restart, "restart", false, "forget this run's checkpoint and start over")
		fs.BoolVar(&overlap, "overlap", false, "transform the next batch while the current one loads: about 0.85x the time on 2 cores, about 1.35x the peak memory")
		fs.BoolVar(&replace, "replace", false, "replace the stored rows of the events read (every column, and their leads, experience and education) instead of keeping them")
		fs.Int64Var(&maxErrors, "max-errors", 100, "exit non-zero when more lines than this are quarantined (-1: never)")
		fs.Var(&partBytes, "part-bytes", "checkpoint big NDJSON files every this many bytes (default a quarter of load.max_batch_bytes)")
	})
	if !ok {
		return code
	}
	log := newLogger(env.stderr, cfg)
	files, err := expandInputs(paths)
	if err != nil || len(files) == 0 {
		fmt.Fprintf(env.stderr, "sendpilot-loader backfill: no input files (%v); give files, directories or globs of .ndjson, .jsonl or .json, optionally .gz\n", err)
		return 2
	}
	keep, filter, err := backfillFilter(since, until, types)
	if err != nil {
		fmt.Fprintf(env.stderr, "sendpilot-loader backfill: %v\n", err)
		return 2
	}
	l, err := newLoader(cfg, log, nil, bufferReader(cfg, log), env.getenv)
	if err != nil {
		log.Error("prepare loader", "err", err)
		return 1
	}
	progress := progressReporter(env, log)
	start := time.Now()
	rep, err := l.Backfill(ctx, load.BackfillOptions{Files: files, Keep: keep, Filter: filter, DryRun: dryRun, Restart: restart, Replace: replace, Overlap: overlap, Progress: progress, PartBytes: int64(partBytes)})
	printBackfill(env, rep, dryRun, time.Since(start))
	switch {
	case errors.Is(err, load.ErrBusy):
		log.Error("another load is running for this data directory; try again when it is done")
		return 3
	case err != nil:
		log.Error("backfill stopped; run the same command again to resume", "err", err)
		return 1
	case maxErrors >= 0 && rep.Counts.Quarantined > maxErrors:
		log.Error("too many bad lines", "quarantined", rep.Counts.Quarantined, "max_errors", maxErrors, "files", rep.QuarantineFiles)
		return 4
	}
	return 0
}

// expandInputs turns files, directories (recursively) and globs into the list of input files.
func expandInputs(args []string) ([]string, error) {
	var out []string
	add := func(p string) {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	isInput := func(name string) bool {
		name = strings.TrimSuffix(name, ".gz")
		return strings.HasSuffix(name, ".ndjson") || strings.HasSuffix(name, ".jsonl") || strings.HasSuffix(name, ".json")
	}
	for _, arg := range args {
		matches := []string{arg}
		if strings.ContainsAny(arg, "*?[") {
			m, err := filepath.Glob(arg)
			if err != nil {
				return nil, fmt.Errorf("expand %s: %w", arg, err)
			}
			matches = m
		}
		for _, m := range matches {
			info, err := os.Stat(m)
			if err != nil {
				return nil, fmt.Errorf("read input: %w", err)
			}
			if !info.IsDir() {
				add(m)
				continue
			}
			err = filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && isInput(d.Name()) {
					add(p)
				}
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("walk %s: %w", m, err)
			}
		}
	}
	return out, nil
}

// backfillFilter builds the event filter and its description for the checkpoint.
func backfillFilter(since, until string, types []string) (func(string, string, int64, bool) bool, string, error) {
	parse := func(s string) (int64, error) {
		if s == "" {
			return 0, nil
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UnixMicro(), nil
			}
		}
		return 0, fmt.Errorf("read time %q: want RFC 3339 or YYYY-MM-DD", s)
	}
	from, err := parse(since)
	if err != nil {
		return nil, "", err
	}
	to, err := parse(until)
	if err != nil {
		return nil, "", err
	}
	desc := fmt.Sprintf("since=%s until=%s types=%s", since, until, strings.Join(types, ","))
	if from == 0 && to == 0 && len(types) == 0 {
		return nil, desc, nil
	}
	return func(canonical, raw string, occurred int64, ok bool) bool {
		if len(types) > 0 && !slices.Contains(types, canonical) && !slices.Contains(types, raw) {
			return false
		}
		if (from != 0 || to != 0) && !ok {
			return false // a time filter cannot place an event without a time
		}
		return (from == 0 || occurred >= from) && (to == 0 || occurred < to)
	}, desc, nil
}

// progressReporter shows a progress bar on a terminal and a log line every few seconds otherwise.
func progressReporter(env *environment, log interface{ Info(string, ...any) }) func(int64, int64, transform.Counts) {
	if f, ok := env.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.DefaultBytes(-1, "backfill") // the total is known once the inputs are planned
		sized := false
		return func(done, total int64, c transform.Counts) {
			if !sized {
				bar.ChangeMax64(total)
				sized = true
			}
			bar.Describe(fmt.Sprintf("backfill: %d events, %d bad lines", c.Events, c.Quarantined))
			bar.Set64(done)
		}
	}
	var last time.Time
	start := time.Now()
	return func(done, total int64, c transform.Counts) {
		if time.Since(last) < 5*time.Second && done < total {
			return
		}
		last = time.Now()
		rate := float64(done) / 1e6 / time.Since(start).Seconds()
		var eta time.Duration
		if done > 0 {
			eta = time.Duration(float64(time.Since(start)) * float64(total-done) / float64(done))
		}
		log.Info("backfill progress", "bytes", done, "of", total, "events", c.Events, "bad_lines", c.Quarantined,
			"mb_per_s", fmt.Sprintf("%.1f", rate), "eta", eta.Round(time.Second))
	}
}

func printBackfill(env *environment, rep load.BackfillReport, dryRun bool, took time.Duration) {
	w := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	count := func(n int64) string {
		switch {
		case dryRun:
			return "(dry run)"
		case n < 0:
			return "unknown"
		}
		return fmt.Sprint(n)
	}
	if rep.Replaced != nil {
		fmt.Fprintln(w, "table\trows\treplaced (removed)\twritten\t")
		for _, t := range transform.Tables {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t\n", t, rep.Rows[t], count(rep.Replaced[t]), count(rep.Inserted[t]))
		}
	} else {
		fmt.Fprintln(w, "table\trows\tnew in warehouse\t")
		for _, t := range transform.Tables {
			fmt.Fprintf(w, "%s\t%d\t%s\t\n", t, rep.Rows[t], count(rep.Inserted[t]))
		}
	}
	w.Flush()
	mb := float64(rep.Bytes) / 1e6
	fmt.Fprintf(env.stdout, "%d lines, %d events, %d filtered out, %d bad lines (quarantined); %d parts done now, %d before; %.1f MB in %s (%.1f MB/s, %.0f events/s)\n",
		rep.Counts.Lines, rep.Counts.Events, rep.Counts.Filtered, rep.Counts.Quarantined, rep.Parts, rep.SkippedParts,
		mb, took.Round(time.Millisecond), mb/took.Seconds(), float64(rep.Counts.Events)/took.Seconds())
	for _, q := range rep.QuarantineFiles {
		fmt.Fprintf(env.stdout, "bad lines: %s\n", q)
	}
	if rep.Refused > 0 {
		fmt.Fprintf(env.stdout, "%d events refused by the warehouse, the rest of their batches loaded; once fixed, backfill:\n", rep.Refused)
		for _, q := range rep.RefusedFiles {
			fmt.Fprintf(env.stdout, "refused: %s\n", q)
		}
	}
}
