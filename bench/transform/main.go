// Command transform measures how fast transform.Files converts a corpus of SendPilot events into its four
// Parquet tables, against DuckDB doing the same conversion in SQL (read_ndjson, json_transform, unnest and
// COPY ... TO parquet), on the same input with the same number of threads.
//
// Each conversion runs in its own child process (this program re-executed with a hidden --run flag), so that
// the peak RSS the kernel reports for the child is that engine's alone; the parent times the child and reads
// its peak RSS from its rusage. Outputs go to a fresh directory under --work-dir, removed after each run. The
// parent then counts the rows of every Parquet file with DuckDB and fails if the two engines disagree.
//
// The input is read once before the first run, so that both engines start with it in the page cache.
//
// Usage:
//
//	go run ./bench/transform --input bench-data/corpus-1g.ndjson [--threads N] [--runs 3]
//	go run ./bench/transform --gen-bytes 1GB
//	go run ./bench/transform --gen-bytes 250MB --gen-shape wide-leads --runs 3 --cpu-profile ours.pprof
package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sendpilot-loader/bench/benchkit"
	"sendpilot-loader/bench/corpus"
	"sendpilot-loader/configs"
	"sendpilot-loader/transform"
)

// Engine names, as given to --run and printed in the table.
const (
	engineOurs   = "ours"
	engineDuckDB = "duckdb"
)

// options are the command-line flags.
type options struct {
	input    string
	genBytes string
	genShape string
	profile  string
	threads  int
	workDir  string
	runs     int
	// run and out are set only in a child process.
	run string
	out string
}

// hiddenFlags are the flags the parent passes to its children; they are left out of the usage text.
var hiddenFlags = map[string]bool{"run": true, "out": true}

func parseFlags() options {
	var o options
	flag.StringVar(&o.input, "input", "", "NDJSON corpus of bare SendPilot events to convert")
	flag.StringVar(&o.genBytes, "gen-bytes", "", "without --input: use bench-data/corpus-<size>.ndjson, generating it if missing (e.g. 1GB)")
	flag.StringVar(&o.genShape, "gen-shape", string(corpus.ShapeDefault), fmt.Sprintf("with --gen-bytes: the corpus shape, one of %v", corpus.Shapes))
	flag.StringVar(&o.profile, "cpu-profile", "", "write a CPU profile of our engine's last run to this file")
	flag.IntVar(&o.threads, "threads", runtime.NumCPU(), "threads for both engines (our workers and GOMAXPROCS; DuckDB's threads setting)")
	flag.StringVar(&o.workDir, "work-dir", "./bench-data/transform-work", "directory for the temporary outputs")
	flag.IntVar(&o.runs, "runs", 1, "runs per engine; the median is reported")
	flag.StringVar(&o.run, "run", "", "child mode: run one engine (ours or duckdb) and exit")
	flag.StringVar(&o.out, "out", "", "child mode: output directory")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s (--input FILE | --gen-bytes SIZE) [flags]\n", filepath.Base(os.Args[0]))
		flag.VisitAll(func(f *flag.Flag) {
			if hiddenFlags[f.Name] {
				return
			}
			fmt.Fprintf(flag.CommandLine.Output(), "  --%s\n    \t%s", f.Name, f.Usage)
			if f.DefValue != "" {
				fmt.Fprintf(flag.CommandLine.Output(), " (default %s)", f.DefValue)
			}
			fmt.Fprintln(flag.CommandLine.Output())
		})
	}
	flag.Parse()
	return o
}

func main() {
	o := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if o.run != "" {
		err = child(ctx, o)
	} else {
		err = parent(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/transform:", err)
		os.Exit(1)
	}
}

// child runs one engine on the input and writes its tables to o.out.
func child(ctx context.Context, o options) error {
	if o.input == "" || o.out == "" || o.threads < 1 {
		return errors.New("check child flags: --input, --out and a positive --threads are required")
	}
	switch o.run {
	case engineOurs:
		runtime.GOMAXPROCS(o.threads)
		if os.Getenv("GOMEMLIMIT") == "" {
			debug.SetMemoryLimit(int64(configs.Defaults().MemoryLimit)) // as every sendpilot-loader command does
		}
		if o.profile != "" {
			f, err := os.Create(o.profile)
			if err != nil {
				return fmt.Errorf("create cpu profile: %w", err)
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return fmt.Errorf("start cpu profile: %w", err)
			}
			defer pprof.StopCPUProfile()
		}
		_, err := transform.Files(ctx, []string{o.input}, o.out, transform.Options{Workers: o.threads})
		if err != nil {
			return fmt.Errorf("run transform: %w", err)
		}
		return nil
	case engineDuckDB:
		return runDuckDB(ctx, o.input, o.out, o.threads)
	default:
		return fmt.Errorf("check child flags: unknown engine %q", o.run)
	}
}

// measurement is what one child run cost and produced.
type measurement struct {
	engine  string
	elapsed time.Duration
	cpu     time.Duration // user plus system time of the child
	maxRSS  int64         // bytes
	rows    []int64       // per table, in the order of transform.Tables
}

// parent runs each engine o.runs times in child processes, checks the row counts and prints the results.
func parent(ctx context.Context, o options) error {
	if o.threads < 1 || o.runs < 1 {
		return errors.New("check flags: --threads and --runs must be positive")
	}
	input, err := resolveInput(o)
	if err != nil {
		return err
	}
	info, err := scanInput(input)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.workDir, 0o755); err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find executable: %w", err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return fmt.Errorf("open duckdb: %w", err)
	}
	defer db.Close()

	all := map[string][]measurement{}
	var reference *measurement
	for run := 1; run <= o.runs; run++ {
		// Alternate the engines within each run, so that a drift in the machine's speed hits both.
		for _, engine := range []string{engineOurs, engineDuckDB} {
			m, err := measure(ctx, db, self, engine, input, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "run %d/%d %-6s %7.2fs wall %7.2fs CPU  peak RSS %6.0f MiB  rows %v\n",
				run, o.runs, engine, m.elapsed.Seconds(), m.cpu.Seconds(), mib(m.maxRSS), m.rows)
			if reference == nil {
				reference = &m
			} else if !slices.Equal(m.rows, reference.rows) {
				return fmt.Errorf("compare row counts: %s wrote %v rows (%s), %s wrote %v",
					m.engine, m.rows, strings.Join(transform.Tables, ", "), reference.engine, reference.rows)
			}
			all[engine] = append(all[engine], m)
		}
	}
	printReport(os.Stdout, median(all[engineOurs]), median(all[engineDuckDB]), info, o)
	return nil
}

// median returns the run of median wall time (the slower middle one of an even count).
func median(ms []measurement) measurement {
	s := slices.Clone(ms)
	slices.SortFunc(s, func(a, b measurement) int { return int(a.elapsed - b.elapsed) })
	return s[len(s)/2]
}

// measure runs one engine in a child process writing to a fresh directory under the work dir, and counts the
// rows it wrote.
func measure(ctx context.Context, db *sql.DB, self, engine, input string, o options) (measurement, error) {
	out, err := os.MkdirTemp(o.workDir, engine+"-")
	if err != nil {
		return measurement{}, fmt.Errorf("create output dir: %w", err)
	}
	defer os.RemoveAll(out)
	args := []string{"--run", engine, "--input", input, "--out", out, "--threads", strconv.Itoa(o.threads)}
	if engine == engineOurs && o.profile != "" {
		args = append(args, "--cpu-profile", o.profile)
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return measurement{}, fmt.Errorf("run %s child: %w", engine, err)
	}
	m := measurement{engine: engine, elapsed: time.Since(start)}
	m.maxRSS = benchkit.PeakRSS(cmd.ProcessState)
	m.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if m.rows, err = countRows(ctx, db, out, transform.Tables); err != nil {
		return measurement{}, err
	}
	return m, nil
}

// resolveInput returns the input path: --input, or the corpus file named after --gen-bytes and --gen-shape
// (bench-data/corpus-<size>.ndjson for the default shape, corpus-<size>-<shape>.ndjson for others), generated
// if it is missing.
func resolveInput(o options) (string, error) {
	if o.input != "" {
		return o.input, nil
	}
	if o.genBytes == "" {
		return "", errors.New("check flags: --input or --gen-bytes is required")
	}
	size, err := configs.ParseByteSize(o.genBytes)
	if err != nil {
		return "", fmt.Errorf("parse --gen-bytes: %w", err)
	}
	shape, err := corpus.ParseShape(o.genShape)
	if err != nil {
		return "", err
	}
	name := "corpus-" + o.genBytes
	if shape != corpus.ShapeDefault {
		name += "-" + string(shape)
	}
	path := filepath.Join("bench-data", name+".ndjson")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	fmt.Fprintf(os.Stderr, "generating %s (%d bytes)\n", path, size)
	if err := generate(path, int64(size), shape); err != nil {
		return "", err
	}
	return path, nil
}

// generate writes at least size bytes of bare events from corpus.NewShape(1, false, shape), the corpus
// bench/gen writes by default for that shape, to path.
func generate(path string, size int64, shape corpus.Shape) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create corpus dir: %w", err)
	}
	_, err := benchkit.WriteCorpusFrom(path, size, corpus.NewShape(1, false, shape))
	return err
}

// inputInfo describes the input file.
type inputInfo struct {
	path    string
	size    int64
	lines   int64
	longest int // bytes, without the newline
}

// scanInput reads the whole input once, which also brings it into the page cache, and measures its lines.
func scanInput(path string) (inputInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return inputInfo{}, fmt.Errorf("open input: %w", err)
	}
	defer f.Close()
	info := inputInfo{path: path}
	r := bufio.NewReaderSize(f, 1<<20)
	cur := 0
	for {
		chunk, err := r.ReadSlice('\n')
		info.size += int64(len(chunk))
		cur += len(chunk)
		if n := len(chunk); n > 0 && chunk[n-1] == '\n' {
			info.lines++
			info.longest = max(info.longest, cur-1)
			cur = 0
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			if cur > 0 {
				info.lines++
				info.longest = max(info.longest, cur)
			}
			return info, nil
		default:
			return inputInfo{}, fmt.Errorf("read input: %w", err)
		}
	}
}

// printReport prints the Markdown table, the throughput ratio and a line describing the machine and input.
func printReport(w io.Writer, ours, duck measurement, info inputInfo, o options) {
	mbps := func(m measurement) float64 { return float64(info.size) / 1e6 / m.elapsed.Seconds() }
	fmt.Fprintln(w, "| engine | seconds | MB/s | CPU seconds | peak RSS MiB | events | leads | experience | education |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, m := range []measurement{ours, duck} {
		fmt.Fprintf(w, "| %s | %.2f | %.1f | %.2f | %.0f |", m.engine, m.elapsed.Seconds(), mbps(m), m.cpu.Seconds(), mib(m.maxRSS))
		for _, n := range m.rows {
			fmt.Fprintf(w, " %d |", n)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nratio ours/DuckDB throughput: %.2f× (median of %d runs each); DuckDB CPU time / ours: %.2f×\n",
		mbps(ours)/mbps(duck), o.runs, duck.cpu.Seconds()/ours.cpu.Seconds())
	fmt.Fprintf(w, "\nmachine: NumCPU %d, threads %d, %s/%s, %s, %s; input %s: %.1f MB, %d lines, largest line %d bytes; run at %s\n",
		runtime.NumCPU(), o.threads, runtime.GOOS, runtime.GOARCH, benchkit.CPUModel(), runtime.Version(),
		info.path, float64(info.size)/1e6, info.lines, info.longest, time.Now().Format(time.RFC3339))
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
