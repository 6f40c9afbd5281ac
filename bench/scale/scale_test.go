package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the benchmark's plain insert child, as the command does.
func TestMain(m *testing.M) {
	if os.Getenv(childEnvVar) == childPlainInsert {
		os.Exit(childMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    func(options) string // "" when o is as expected, else what is wrong
		wantErr string
	}{
		{name: "defaults", args: nil, want: func(o options) string {
			if got := sizesOf(o); !slices.Equal(got, []int64{0, 1e9, 5e9}) {
				return "sizes " + int64s(got)
			}
			if o.batchEvents != 1000 || o.catchupBytes != 250e6 || o.backfillBytes != 1e9 || o.runs != 1 || o.workDir != "./bench-data/scale" {
				return "other defaults differ"
			}
			if o.sizes[0].label != "0 (empty)" || o.sizes[2].label != "5GB" {
				return "labels " + o.sizes[0].label + ", " + o.sizes[2].label
			}
			return ""
		}},
		{name: "sizes sorted", args: []string{"--sizes", "5GB, 0,1GiB"}, want: func(o options) string {
			if got := sizesOf(o); !slices.Equal(got, []int64{0, 1 << 30, 5e9}) {
				return "sizes " + int64s(got)
			}
			return ""
		}},
		{name: "units", args: []string{"--catchup-bytes", "20MB", "--backfill-bytes", "1MiB", "--batch-events", "7"}, want: func(o options) string {
			if o.catchupBytes != 20e6 || o.backfillBytes != 1<<20 || o.batchEvents != 7 {
				return "sizes not read"
			}
			return ""
		}},
		{name: "repeated size", args: []string{"--sizes", "1GB,1000MB"}, wantErr: "repeats a size"},
		{name: "bad size", args: []string{"--sizes", "0,lots"}, wantErr: "parse --sizes"},
		{name: "too many sizes", args: []string{"--sizes", "0,1,2,3,4,5,6,7,8"}, wantErr: "at most 8 sizes"},
		{name: "no batch", args: []string{"--batch-events", "0"}, wantErr: "--batch-events"},
		{name: "no catch-up", args: []string{"--catchup-bytes", "0"}, wantErr: "must be positive"},
		{name: "no runs", args: []string{"--runs", "0"}, wantErr: "--runs"},
		{name: "no timeout", args: []string{"--child-timeout", "0s"}, wantErr: "--child-timeout"},
		{name: "arguments", args: []string{"extra"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) error = %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			if msg := tt.want(o); msg != "" {
				t.Errorf("parseFlags(%q): %s", tt.args, msg)
			}
		})
	}
}

func sizesOf(o options) []int64 {
	var out []int64
	for _, s := range o.sizes {
		out = append(out, s.bytes)
	}
	return out
}

func int64s(xs []int64) string {
	var s []string
	for _, x := range xs {
		s = append(s, strconv.FormatInt(x, 10))
	}
	return strings.Join(s, ",")
}

// TestSmoke runs the whole benchmark at tiny sizes, twice in the same work dir: the second run must reuse the
// warehouses the first built. It checks the report's tables, not its figures.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sendpilot-loader and runs it a dozen times")
	}
	work := t.TempDir()
	args := []string{"--work-dir", work, "--sizes", "0,2MB", "--batch-events", "50", "--catchup-bytes", "1MB",
		"--backfill-bytes", "2MB", "--child-timeout", "2m"}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for i, wantOrigin := range []string{"built in this run", "cached file"} {
		o, err := parseFlags(args)
		if err != nil {
			t.Fatal(err)
		}
		var out, progress bytes.Buffer
		err = run(ctx, o, &out, &progress)
		t.Logf("progress:\n%s", progress.String())
		if err != nil {
			t.Fatalf("run %d: %v\nprogress:\n%s", i+1, err, progress.String())
		}
		rep := out.String()
		t.Logf("run %d report:\n%s", i+1, rep)
		empty, full := tableRow(t, rep, "0 (empty)"), tableRow(t, rep, "2MB")
		if len(empty) != 13 || len(full) != 13 {
			t.Fatalf("run %d: load rows have %d and %d cells, want 13", i+1, len(empty), len(full))
		}
		if empty[1] != "0" || full[1] == "0" {
			t.Errorf("run %d: events stored %s and %s, want 0 and more", i+1, empty[1], full[1])
		}
		for _, col := range []int{4, 6, 8, 11} {
			if empty[col] != "1.00×" {
				t.Errorf("run %d: the empty warehouse's ratio in column %d is %q, want 1.00×", i+1, col, empty[col])
			}
		}
		if full[12] == "0" {
			t.Errorf("run %d: the catch-up load committed no batch", i+1)
		}
		for _, name := range []string{"`sendpilot-loader backfill`", "DuckDB `INSERT INTO t BY NAME"} {
			if cells := tableRow(t, rep, name); len(cells) != 9 || cells[5] == "0" {
				t.Errorf("run %d: backfill row %q = %q, want 9 cells with events", i+1, name, cells)
			}
		}
		if n := strings.Count(rep, wantOrigin); n != 2 {
			t.Errorf("run %d: %d warehouses %q, want both", i+1, n, wantOrigin)
		}
		for _, d := range []string{"inputs", "runs"} {
			if entries, err := os.ReadDir(filepath.Join(work, d)); err == nil && len(entries) > 0 {
				t.Errorf("run %d: %s is left with %d entries", i+1, d, len(entries))
			}
		}
	}
}

// tableRow returns the cells of the Markdown table row whose first cell starts with first, or fails.
func tableRow(t *testing.T, report, first string) []string {
	t.Helper()
	for line := range strings.Lines(report) {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if strings.HasPrefix(line, "|") && strings.HasPrefix(cells[0], first) {
			return cells
		}
	}
	t.Fatalf("no table row for %q in the report", first)
	return nil
}
