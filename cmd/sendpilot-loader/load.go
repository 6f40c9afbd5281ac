package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sendpilot-loader/configs"
	"sendpilot-loader/extract/buffer"
	"sendpilot-loader/extract/envelope"
	"sendpilot-loader/load"
	"sendpilot-loader/load/bigquery"
	"sendpilot-loader/load/duckdb"
)

// newLoader builds the loader for a configuration, loading from buf.
func newLoader(cfg configs.Config, log *slog.Logger, reg prometheus.Registerer, buf load.Buffer, getenv func(string) string) (*load.Loader, error) {
	return load.New(loaderOptions(cfg, log, reg, buf, getenv))
}

// loaderOptions are the loader's settings from a configuration.
func loaderOptions(cfg configs.Config, log *slog.Logger, reg prometheus.Registerer, buf load.Buffer, getenv func(string) string) load.Options {
	return load.Options{
		DataDir:       cfg.DataDir,
		Buffer:        buf,
		Warehouse:     func() (load.Warehouse, error) { return openWarehouse(cfg) },
		MaxBatchBytes: int64(cfg.Load.MaxBatchBytes),
		Attempts:      cfg.Load.Attempts,
		Backoff:       cfg.Load.Backoff,
		Logger:        log.With("component", "loader"),
		Registerer:    reg,
		AfterStep:     crashHook(getenv),
	}
}

// bufferOptions are the buffer's settings from a configuration, for its writer and its readers alike.
func bufferOptions(cfg configs.Config, log *slog.Logger, reg prometheus.Registerer) buffer.Options {
	return buffer.Options{
		SegmentMaxBytes:  int64(cfg.Buffer.SegmentMaxBytes),
		SegmentMaxAge:    cfg.Buffer.SegmentMaxAge,
		MaxBytes:         int64(cfg.Buffer.MaxBytes),
		MinFreeBytes:     int64(cfg.Buffer.MinFreeBytes),
		ArchiveDir:       cfg.ArchiveDir(),
		ArchiveRetention: cfg.Load.ArchiveRetention,
		Logger:           log.With("component", "buffer"),
		Registerer:       reg,
		RecordTime:       envelope.ReceivedAt,
	}
}

// bufferReader is the buffer as commands other than serve see it.
func bufferReader(cfg configs.Config, log *slog.Logger) *buffer.Reader {
	return buffer.OpenReader(cfg.BufferDir(), bufferOptions(cfg, log, nil))
}

// openWarehouse returns BigQuery when a project is configured, the local DuckDB file otherwise.
func openWarehouse(cfg configs.Config) (load.Warehouse, error) {
	if cfg.BigQuery.Project == "" {
		w := duckdb.New(cfg.DuckDBFile())
		w.MemoryLimit = int64(cfg.Load.DuckDBMemoryLimit)
		return w, nil
	}
	return openBigQuery(context.Background(), cfg)
}

// openBigQuery connects to the configured BigQuery project, or to the emulator when one is configured.
func openBigQuery(ctx context.Context, cfg configs.Config) (*bigquery.Warehouse, error) {
	return bigquery.New(ctx, bigquery.Config{
		Project: cfg.BigQuery.Project, Dataset: cfg.BigQuery.Dataset, Location: cfg.BigQuery.Location,
		Bucket: cfg.BigQuery.Bucket, EmulatorHost: cfg.BigQuery.EmulatorHost,
		StepTimeout: cfg.BigQuery.StepTimeout, PollInterval: cfg.BigQuery.PollInterval,
	})
}

// warehouseName says where loads go, for logs and status.
func warehouseName(cfg configs.Config) string {
	if cfg.BigQuery.Project != "" {
		return "bigquery:" + cfg.BigQuery.Project + "." + cfg.BigQuery.Dataset
	}
	return cfg.DuckDBFile()
}

// crashHook returns a hook that kills the process with SIGKILL right after the named batch step is recorded,
// when SENDPILOT_TEST_CRASH_AFTER_STEP names one. It exists for the crash tests, which must kill a real
// process at exact points; it is nil otherwise.
func crashHook(getenv func(string) string) func(string, load.Step) {
	step := getenv("SENDPILOT_TEST_CRASH_AFTER_STEP")
	if step == "" {
		return nil
	}
	return func(_ string, s load.Step) {
		if string(s) == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}

func runLoad(ctx context.Context, env *environment, args []string) int {
	var dryRun, once bool
	cfg, rest, code, ok := parseConfig(env, "load", "load [--dry-run] [--once] [flags]", args, func(fs *flag.FlagSet, c *configs.Config) {
		configs.BindCommon(fs, c)
		configs.BindLoad(fs, c)
		fs.BoolVar(&dryRun, "dry-run", false, "show what would be loaded and exit")
		fs.BoolVar(&once, "once", false, "load at most one batch (default: drain everything pending, batch after batch)")
	})
	if !ok {
		return code
	}
	log := newLogger(env.stderr, cfg)
	if len(rest) > 0 {
		log.Error("load takes no arguments", "args", rest)
		return 2
	}
	opts := loaderOptions(cfg, log, nil, bufferReader(cfg, log), env.getenv)
	opts.Once = once
	done := 0
	opts.Progress = func(m *load.Manifest, backlog int) {
		done += len(m.Segments)
		log.Info("batch done", "batch", m.ID, "step", m.Step, "events", m.Rows["events"],
			"segments_done", done, "segments_pending_at_start", backlog)
	}
	l, err := load.New(opts)
	if err != nil {
		log.Error("prepare loader", "err", err)
		return 1
	}
	if dryRun {
		segs, err := l.Pending()
		if err != nil {
			log.Error("list pending segments", "err", err)
			return 1
		}
		var total int64
		for _, s := range segs {
			fmt.Fprintf(env.stdout, "%s\t%d bytes\n", s.Path, s.Size)
			total += s.Size
		}
		fmt.Fprintf(env.stdout, "would load %d segments, %d bytes, into %s\n", len(segs), total, warehouseName(cfg))
		return 0
	}
	rep, err := l.Run(ctx)
	printBatches(env.stdout, rep.Batches)
	switch {
	case errors.Is(err, load.ErrBusy):
		log.Warn("another load is running for this data directory; nothing done")
		return 3
	case err != nil:
		log.Error("load failed; segments stay pending for the next run", "err", err)
		return 1
	case len(rep.Batches) == 0:
		fmt.Fprintln(env.stdout, "nothing to load")
	}
	return 0
}

func printBatches(w io.Writer, ms []*load.Manifest) {
	if len(ms) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "batch\tstep\tsegments\tevents\tleads\texperience\teducation\tnew events\tquarantined\terror")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%s\n", m.ID, m.Step, len(m.Segments), m.Rows["events"], m.Rows["leads"],
			m.Rows["experience"], m.Rows["education"], inserted(m), m.Quarantined, m.Error)
	}
	tw.Flush()
}

func inserted(m *load.Manifest) string {
	if m.Inserted == nil {
		return "-"
	}
	return strconv.FormatInt(m.Inserted["events"], 10)
}

func runStatus(ctx context.Context, env *environment, args []string) int {
	cfg, _, code, ok := parseConfig(env, "status", "status [flags]", args, func(fs *flag.FlagSet, c *configs.Config) {
		configs.BindCommon(fs, c)
		configs.BindLoad(fs, c)
	})
	if !ok {
		return code
	}
	log := newLogger(env.stderr, cfg)
	bs, err := bufferReader(cfg, log).Stats()
	if err != nil {
		fmt.Fprintf(env.stderr, "sendpilot-loader status: %v\n", err)
		return 1
	}
	st, err := load.ReadStatus(cfg.DataDir)
	if err != nil {
		fmt.Fprintf(env.stderr, "sendpilot-loader status: %v\n", err)
		return 1
	}
	w := env.stdout
	fmt.Fprintf(w, "data dir:          %s\n", cfg.DataDir)
	fmt.Fprintf(w, "pending segments:  %d (%d bytes)\n", bs.PendingSegments, bs.PendingBytes)
	if !bs.OldestPending.IsZero() {
		fmt.Fprintf(w, "oldest pending:    %s ago (%s)\n", time.Since(bs.OldestPending).Round(time.Second), bs.OldestPending.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "active segment:    %v\n", bs.ActiveSegment)
	fmt.Fprintf(w, "bad files:         %d\n", bs.BadFiles)
	fmt.Fprintf(w, "warehouse:         %s\n", warehouseName(cfg))
	if st.LastBatch == nil {
		fmt.Fprintln(w, "last batch:        none yet")
	} else {
		m := st.LastBatch
		fmt.Fprintf(w, "last batch:        %s, %s at %s (%d segments, %d events)\n", m.ID, m.Step, m.UpdatedAt.Format(time.RFC3339), len(m.Segments), m.Rows["events"])
		if m.Error != "" {
			fmt.Fprintf(w, "last error:        %s\n", m.Error)
		}
	}
	if p := st.Paused; p != nil {
		fmt.Fprintf(w, "LOADS PAUSED:      since %s (batch %s); nothing is moved, every run tries again\n", p.Since.Format(time.RFC3339), p.Batch)
		fmt.Fprintf(w, "pause reason:      %s\n", p.Error)
	}
	if st.Refused > 0 {
		fmt.Fprintf(w, "refused events:    %d, kept with the warehouse's error in %s\n", st.Refused, strings.Join(st.RefusedFiles, ", "))
	}
	if st.Unfinished > 0 {
		fmt.Fprintf(w, "unfinished:        %d batch(es); the next load resumes them\n", st.Unfinished)
	}
	return 0
}
