package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"sendpilot-loader/configs"
	"sendpilot-loader/transform"
)

func runTransform(ctx context.Context, env *environment, args []string) int {
	var out string
	cfg, files, code, ok := parseConfig(env, "transform", "transform --out DIR FILE...", args, func(fs *flag.FlagSet, c *configs.Config) {
		configs.BindCommon(fs, c)
		fs.StringVar(&out, "out", "", "directory for events/leads/experience/education .parquet and quarantine.ndjson (required)")
	})
	if !ok {
		return code
	}
	log := newLogger(env.stderr, cfg)
	if out == "" || len(files) == 0 {
		fmt.Fprintln(env.stderr, "sendpilot-loader transform: need --out DIR and at least one FILE (NDJSON, optionally .gz)")
		return 2
	}
	start := time.Now()
	res, err := transform.Files(ctx, files, out, transform.Options{})
	if err != nil {
		log.Error("transform failed", "err", err)
		return 1
	}
	printTransformSummary(env.stdout, res, time.Since(start))
	return 0
}

// printTransformSummary prints one line per table and the totals.
func printTransformSummary(w io.Writer, res transform.Result, took time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "table\trows\tbytes\tfile\t")
	for _, t := range res.Tables {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t\n", t.Table, t.Rows, t.Bytes, t.Path)
	}
	fmt.Fprintf(tw, "quarantine\t%d\t\t%s\t\n", res.Counts.Quarantined, res.QuarantinePath)
	tw.Flush()
	mb := float64(res.InputBytes) / 1e6
	fmt.Fprintf(w, "read %d lines (%.1f MB) into %d events in %s (%.1f MB/s)\n",
		res.Counts.Lines, mb, res.Counts.Events, took.Round(time.Millisecond), mb/took.Seconds())
}
