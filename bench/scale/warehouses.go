package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"sendpilot-loader/bench/benchkit"
	"sendpilot-loader/transform"
)

// warehouse is a base warehouse: the cached DuckDB file every measurement at its size starts from a copy of.
type warehouse struct {
	size      size
	path      string
	rows      []int64 // per transform.Tables
	fileBytes int64
	origin    string // cached, or built in this run
}

// cachePath is where the cached warehouse holding n bytes of corpus lives: the name carries everything its
// content depends on that a run can change (seed, size, the table DDL's hash).
func (b *bench) cachePath(n int64) string {
	return filepath.Join(b.cacheDir, fmt.Sprintf("corpus-seed%d-%s-schema%s.duckdb", b.o.seed, sizeName(n), b.schema))
}

// keepAsCache moves the warehouse a backfill of s's corpus built in dataDir to the cache.
func (b *bench) keepAsCache(dataDir string, n int64, how string) error {
	file := layout(dataDir).DuckDBFile()
	if _, err := os.Stat(file + ".wal"); err == nil {
		return fmt.Errorf("cache warehouse: %s.wal is left after the backfill exited; the file alone is not the warehouse", file)
	}
	path := b.cachePath(n)
	if err := os.Rename(file, path); err != nil {
		return fmt.Errorf("cache warehouse: %w", err)
	}
	b.built[path] = how
	return nil
}

// base returns the warehouse holding s's bytes of corpus: the cached file, or one built now with
// "sendpilot-loader backfill" (and cached).
func (b *bench) base(ctx context.Context, s size) (warehouse, error) {
	path := b.cachePath(s.bytes)
	origin, ok := b.built[path]
	if info, err := os.Stat(path); !ok && err == nil && !b.o.rebuild {
		origin = "cached file, built " + info.ModTime().UTC().Format(time.RFC3339)
		b.logf("reusing the cached %s warehouse %s", s.label, path)
	} else if !ok {
		in, err := b.corpusFile(s.bytes)
		if err != nil {
			return warehouse{}, err
		}
		name := "build-" + sizeName(s.bytes)
		dir, err := b.freshDir(name)
		if err != nil {
			return warehouse{}, err
		}
		b.logf("building the %s warehouse: backfill of %s", s.label, in)
		r, err := b.loader(ctx, name, "backfill", "--data-dir", dir, in)
		if err != nil {
			return warehouse{}, err
		}
		origin = fmt.Sprintf("built in this run (backfill %.1f s)", r.usage.Elapsed.Seconds())
		if err := b.keepAsCache(dir, s.bytes, origin); err != nil {
			return warehouse{}, err
		}
		// The corpus file is no longer needed: the comparison, which reads it too, has run.
		if err := errors.Join(b.drop(dir), b.drop(in)); err != nil {
			return warehouse{}, err
		}
		delete(b.corpora, s.bytes)
	}
	rows, err := tableRows(ctx, path)
	if err != nil {
		return warehouse{}, err
	}
	return warehouse{size: s, path: path, rows: rows, fileBytes: fileSize(path), origin: origin}, nil
}

// backfillResult is the backfill into a fresh warehouse next to DuckDB's plain insert of the same rows.
type backfillResult struct {
	inputBytes   int64
	loader       benchkit.Usage
	plain        benchkit.Usage
	transform    time.Duration // transform.Files of the same input in this process, making the Parquet files
	parquetBytes int64
	rows         []int64 // per transform.Tables, the same in both warehouses and the Parquet files
}

// compareBackfill backfills --backfill-bytes of corpus into a fresh data directory, then inserts the same
// file's Parquet tables into a fresh DuckDB database with a plain INSERT … SELECT, each in a child process.
// When a warehouse of that size is wanted and not cached, the backfill's warehouse becomes the cached one.
func (b *bench) compareBackfill(ctx context.Context) (backfillResult, error) {
	in, err := b.corpusFile(b.o.backfillBytes)
	if err != nil {
		return backfillResult{}, err
	}
	res := backfillResult{inputBytes: fileSize(in)}
	const name = "backfill-fresh"
	dir, err := b.freshDir(name)
	if err != nil {
		return res, err
	}
	b.logf("backfill of %s into a fresh warehouse", in)
	r, err := b.loader(ctx, name, "backfill", "--data-dir", dir, in)
	if err != nil {
		return res, err
	}
	res.loader = r.usage
	loaded, err := tableRows(ctx, layout(dir).DuckDBFile())
	if err != nil {
		return res, err
	}

	pq := filepath.Join(b.inputDir, "parquet-"+filepath.Base(in))
	if err := os.RemoveAll(pq); err != nil {
		return res, fmt.Errorf("clear parquet dir: %w", err)
	}
	b.logf("transform of %s into Parquet for the plain insert", in)
	start := time.Now()
	tr, err := transform.Files(ctx, []string{in}, pq, transform.Options{})
	if err != nil {
		return res, fmt.Errorf("transform backfill input: %w", err)
	}
	res.transform = time.Since(start)
	args := []string{"--db", filepath.Join(b.runDir, "plain-insert", "plain.duckdb")}
	for _, t := range transform.Tables {
		tt := tr.Table(t)
		res.rows = append(res.rows, tt.Rows)
		res.parquetBytes += fileSize(tt.Path)
		args = append(args, "--file", t+"="+tt.Path)
	}
	if !slices.Equal(loaded, res.rows) {
		return res, fmt.Errorf("check backfill: the warehouse holds %s, the Parquet files %s", describe(loaded), describe(res.rows))
	}

	pdir, err := b.freshDir("plain-insert")
	if err != nil {
		return res, err
	}
	b.logf("plain insert of the Parquet files into a fresh DuckDB database")
	var log bytes.Buffer
	res.plain, err = benchkit.Command{Path: b.self, Args: args, Env: append(os.Environ(), childEnvVar+"="+childPlainInsert),
		Output: &log, Timeout: b.o.childTimeout}.Run(ctx)
	if err != nil {
		return res, fmt.Errorf("plain insert: %w\n%s", err, tail(log.Bytes(), 2000))
	}
	inserted, err := tableRows(ctx, args[1])
	if err != nil {
		return res, err
	}
	if !slices.Equal(inserted, res.rows) {
		return res, fmt.Errorf("check plain insert: the database holds %s, the Parquet files %s", describe(inserted), describe(res.rows))
	}

	if slices.ContainsFunc(b.o.sizes, func(s size) bool { return s.bytes == b.o.backfillBytes }) {
		if _, err := os.Stat(b.cachePath(b.o.backfillBytes)); err != nil || b.o.rebuild {
			how := fmt.Sprintf("built in this run (the measured backfill, %.1f s)", res.loader.Elapsed.Seconds())
			if err := b.keepAsCache(dir, b.o.backfillBytes, how); err != nil {
				return res, err
			}
		}
	}
	// No later step reads the input again: a warehouse of its size, if one is wanted, is cached now or was before.
	delete(b.corpora, b.o.backfillBytes)
	return res, errors.Join(b.drop(dir), b.drop(pdir), b.drop(pq), b.drop(in))
}
