package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" database/sql driver

	"sendpilot-loader/bench/benchkit"
	"sendpilot-loader/configs"
	sqlfiles "sendpilot-loader/sql"
	"sendpilot-loader/transform"
)

// layout is the default configuration of a sendpilot-loader child with --data-dir dir: where its warehouse
// file and buffer are.
func layout(dir string) configs.Config {
	c := configs.Defaults()
	c.DataDir = dir
	return c
}

// bench is one run of the benchmark: its directories, the binaries it runs and what it built so far.
type bench struct {
	o        options
	progress io.Writer
	bin      string // sendpilot-loader, built for this run
	self     string // this program, re-executed as the plain insert child
	// Directories under the work dir: cacheDir holds the cached warehouses (always kept), inputDir the
	// generated corpus files, Parquet files and segments, runDir the data directories and child logs.
	cacheDir, inputDir, runDir string
	schema                     string            // short hash of sql/duckdb/tables.sql, in every cached warehouse's name
	corpora                    map[int64]string  // corpus NDJSON files of this run, by size
	built                      map[string]string // cached warehouses built in this run: path → how
}

// newBench prepares the work dir and builds sendpilot-loader into it.
func newBench(ctx context.Context, o options, progress io.Writer) (*bench, error) {
	if _, err := benchkit.PrepareDir(o.workDir); err != nil {
		return nil, err
	}
	b := &bench{
		o: o, progress: progress,
		cacheDir: filepath.Join(o.workDir, "warehouses"),
		inputDir: filepath.Join(o.workDir, "inputs"),
		runDir:   filepath.Join(o.workDir, "runs"),
		corpora:  map[int64]string{},
		built:    map[string]string{},
	}
	for _, d := range []string{b.cacheDir, b.inputDir, b.runDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create work dir: %w", err)
		}
	}
	ddl, err := sqlfiles.Files.ReadFile("duckdb/tables.sql")
	if err != nil {
		return nil, fmt.Errorf("read duckdb ddl: %w", err)
	}
	sum := sha256.Sum256(ddl)
	b.schema = hex.EncodeToString(sum[:4])
	if b.self, err = os.Executable(); err != nil {
		return nil, fmt.Errorf("find executable: %w", err)
	}
	b.logf("building sendpilot-loader")
	if b.bin, err = benchkit.BuildLoader(ctx, filepath.Join(o.workDir, "bin")); err != nil {
		return nil, err
	}
	return b, nil
}

// cleanup removes the inputs and data directories unless --keep.
func (b *bench) cleanup() error {
	if b.o.keep {
		b.logf("keeping inputs in %s and data directories in %s", b.inputDir, b.runDir)
		return nil
	}
	if err := errors.Join(os.RemoveAll(b.inputDir), os.RemoveAll(b.runDir)); err != nil {
		return fmt.Errorf("remove work files: %w", err)
	}
	return nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (b *bench) fsType() string { return benchkit.FSType(b.o.workDir) }

// freshDir returns an empty directory under the run dir.
func (b *bench) freshDir(name string) (string, error) {
	dir := filepath.Join(b.runDir, name)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("clear data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	return dir, nil
}

// drop removes a data directory after its measurement, or an input no later step reads, unless --keep.
func (b *bench) drop(path string) error {
	if b.o.keep {
		return nil
	}
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("remove work file: %w", err)
	}
	return nil
}

// loaderRun is one measured sendpilot-loader child.
type loaderRun struct {
	usage   benchkit.Usage
	batches int // "batch done" lines in its log: batches a load committed
}

// loader runs sendpilot-loader with args in a child process at default settings, its output in
// <run dir>/<name>.log, and measures it.
func (b *bench) loader(ctx context.Context, name string, args ...string) (loaderRun, error) {
	logPath := filepath.Join(b.runDir, name+".log")
	var log bytes.Buffer
	u, err := benchkit.Command{Path: b.bin, Args: args, Env: benchkit.LoaderEnv(), Output: &log, Timeout: b.o.childTimeout}.Run(ctx)
	werr := os.WriteFile(logPath, log.Bytes(), 0o644)
	if err != nil {
		return loaderRun{}, fmt.Errorf("%s: %w; the log ends:\n%s", name, err, tail(log.Bytes(), 2000))
	}
	if werr != nil {
		return loaderRun{}, fmt.Errorf("write child log: %w", werr)
	}
	return loaderRun{usage: u, batches: bytes.Count(log.Bytes(), []byte(`msg="batch done"`))}, nil
}

// tail returns the last n bytes of b, from a line start when it can.
func tail(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	b = b[len(b)-n:]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}

// corpusFile returns a file of at least n bytes of bare corpus events (seed --seed), generating it once per
// run. Smaller files are prefixes of larger ones.
func (b *bench) corpusFile(n int64) (string, error) {
	if p, ok := b.corpora[n]; ok {
		return p, nil
	}
	p := filepath.Join(b.inputDir, fmt.Sprintf("corpus-seed%d-%dB.ndjson", b.o.seed, n))
	if _, err := os.Stat(p); err == nil {
		b.logf("reusing %s", p)
	} else {
		b.logf("generating %s", p)
		if _, err := benchkit.WriteCorpus(p, n, b.o.seed, false); err != nil {
			return "", err
		}
	}
	b.corpora[n] = p
	return p, nil
}

// tableRows counts the rows of each of transform.Tables in the DuckDB file at path, opened read-only.
func tableRows(ctx context.Context, path string) ([]int64, error) {
	db, err := sql.Open("duckdb", path+"?access_mode=read_only")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	rows := make([]int64, len(transform.Tables))
	for i, t := range transform.Tables {
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+t).Scan(&rows[i]); err != nil {
			return nil, fmt.Errorf("count rows of %s in %s: %w", t, path, err)
		}
	}
	return rows, nil
}

// copyFile copies src to dst (the kernel's copy_file_range where it can).
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy file: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("copy file: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("copy file: %w", cerr)
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copy file: %w", err)
	}
	// Write the copy out before the measured load starts: left in the page cache, the first fsync of the
	// warehouse file (DuckDB's commit) flushed the whole copy, and the 5 GB warehouse's batch load took 1.1 s
	// longer for it, a cost no deployment pays.
	if err := out.Sync(); err != nil {
		return fmt.Errorf("copy file: %w", err)
	}
	return nil
}

// copyDir copies the regular files of src (not recursively) into dst, which it creates.
func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("copy dir: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("copy dir: %w", err)
	}
	for _, e := range entries {
		if e.Type()&fs.ModeType != 0 {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// fileSize returns the size of path, 0 if it cannot be read.
func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}

// sizeName is the size part of a file name: the byte count, so "1GB" and "1000MB" name the same file.
func sizeName(n int64) string { return fmt.Sprintf("%dB", n) }

// describe joins the counts of each table, "events 12, leads 34, …".
func describe(rows []int64) string {
	var parts []string
	for i, t := range transform.Tables {
		if i < len(rows) {
			parts = append(parts, fmt.Sprintf("%s %d", t, rows[i]))
		}
	}
	return strings.Join(parts, ", ")
}
