// Command pipeline measures the whole pipeline of the real binary: how many signed SendPilot webhooks per
// second "sendpilot-loader serve" acknowledges while its scheduled loads run alongside, and how long an
// acknowledged event takes to become queryable in the DuckDB warehouse.
//
// It builds sendpilot-loader, then for each concurrency level:
//
//  1. Starts "serve" as a child process on 127.0.0.1 (port chosen by the kernel) with a fresh data directory
//     under --dir, a webhook secret (signatures enforced), the default DuckDB warehouse, a short load
//     schedule (--schedule) and a short segment age (--segment-max-age), so segments seal and load while
//     the clients post. Closed-loop clients post signed events for --duration (after an uncounted warm-up,
//     at most --max-requests); the bodies come from the bench corpus generator (about 90% small outreach
//     events, 10% lead extractor and lead database jobs of up to ~600 KB), each posted with a fresh eventId.
//     Per-request latency is from sending the request to reading the whole 2xx answer.
//  2. Meanwhile it samples every --sample-every-th acknowledged event with its ack time and polls the
//     warehouse file, opened read-only between the child's loads (serve holds it only while a load runs),
//     every --poll-interval until each sample is in events, or --visible-timeout after the clients stop.
//     Ack→visible is the start of the first query that found the event minus its ack time, so it is an
//     upper bound by at most one poll interval (plus any poll that met the loader's lock).
//  3. Stops the child with SIGTERM (it seals the active segment), runs "sendpilot-loader load" once to load
//     what is left and checks that count(DISTINCT event_id) in events equals the number of distinct
//     acknowledged event IDs; the command exits non-zero if they differ.
//  4. Runs the same clients against the durable serve process with scheduled loads off (--no-load-run), to
//     show what concurrent loads cost, and against a no-op in-process net/http handler that only reads the
//     body: the ceiling net/http on this machine allows.
//
// The peak RSS of each serve child comes from its rusage after Wait; the bench process's from VmHWM. Keep
// --dir on the disk you mean to measure: /tmp is often a tmpfs, where fsync costs nothing. On a small
// machine the clients, the serve child and its loads share the CPUs, so the figures are for the whole box.
//
// Usage:
//
//	go run ./bench/pipeline [--clients 16,64] [--duration 10s] [--rate 0] [--schedule '@every 2s'] [--dir ./bench-data/pipeline]
//
// With --rate the clients together start at most that many requests per second: a steady load well under
// the ceiling shows the latency an operator sees, where the closed loop shows the ceiling and a backlog.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"sendpilot-loader/bench/benchkit"
)

// secret is the webhook secret the serve child enforces and the clients sign with.
const secret = "whsec_bench_pipeline"

// options are the command-line flags.
type options struct {
	clients        []int
	duration       time.Duration
	warmup         time.Duration
	maxRequests    int64
	dir            string
	schedule       string
	segmentMaxAge  time.Duration
	sampleEvery    int64
	pollInterval   time.Duration
	visibleTimeout time.Duration
	poolSize       int
	seed           uint64
	noLoadRun      bool
	rate           float64
	keep           bool
	serveConfig    string
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		stop()
		os.Exit(1)
	}
}

// parseFlags reads the command line into options.
func parseFlags(args []string) (options, error) {
	var o options
	fl := flag.NewFlagSet("pipeline", flag.ContinueOnError)
	clients := fl.String("clients", "16,64", "comma-separated concurrency levels (closed-loop clients)")
	fl.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured run")
	fl.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "uncounted warm-up before each measured run")
	fl.Int64Var(&o.maxRequests, "max-requests", 200000, "stop a measured run after this many requests")
	fl.StringVar(&o.dir, "dir", "./bench-data/pipeline", "directory for the serve data directories (not /tmp: it may be a tmpfs)")
	fl.StringVar(&o.schedule, "schedule", "@every 2s", "load schedule of the serve child during the measured run")
	fl.DurationVar(&o.segmentMaxAge, "segment-max-age", time.Second, "buffer.segment_max_age of the serve child")
	fl.Int64Var(&o.sampleEvery, "sample-every", 50, "follow every n-th acknowledged event until it is queryable")
	fl.DurationVar(&o.pollInterval, "poll-interval", 250*time.Millisecond, "how often to query the warehouse for the sampled events")
	fl.DurationVar(&o.visibleTimeout, "visible-timeout", 60*time.Second, "stop waiting for sampled events this long after the clients stop")
	fl.IntVar(&o.poolSize, "pool", 2000, "distinct corpus events to cycle through (each post gets a fresh eventId)")
	fl.Uint64Var(&o.seed, "seed", 1, "corpus generator seed")
	fl.BoolVar(&o.noLoadRun, "no-load-run", true, "also measure serve with scheduled loads off")
	fl.Float64Var(&o.rate, "rate", 0, "requests per second, all clients together (0: closed loop, as fast as they go)")
	fl.StringVar(&o.serveConfig, "serve-config", "", "YAML configuration file for the serve child (its --config), e.g. to try memory limits; flags the bench sets win")
	fl.BoolVar(&o.keep, "keep", false, "keep the data directories (buffer, archive, warehouse, serve.log) after the run")
	if err := fl.Parse(args); err != nil {
		return options{}, err
	}
	if fl.NArg() > 0 {
		return options{}, fmt.Errorf("parse flags: unexpected arguments %q", fl.Args())
	}
	var err error
	if o.clients, err = benchkit.ParseLevels(*clients); err != nil {
		return options{}, err
	}
	switch {
	case o.duration <= 0 || o.maxRequests < 1 || o.sampleEvery < 1 || o.pollInterval <= 0 || o.visibleTimeout <= 0:
		return options{}, errors.New("parse flags: --duration, --max-requests, --sample-every, --poll-interval and --visible-timeout must be positive")
	case o.rate < 0:
		return options{}, errors.New("parse flags: --rate must not be negative")
	case o.warmup < 0:
		return options{}, errors.New("parse flags: --warmup must not be negative")
	case o.poolSize < 1 || o.poolSize > 100000:
		return options{}, errors.New("parse flags: --pool must be in 1..100000")
	case o.schedule == "":
		return options{}, errors.New("parse flags: --schedule must not be empty (the point is loads during ingest)")
	case o.segmentMaxAge <= 0:
		return options{}, errors.New("parse flags: --segment-max-age must be positive")
	}
	return o, nil
}

// levelResult is everything measured at one concurrency level.
type levelResult struct {
	clients int
	loads   durableRun
	noLoads *durableRun // nil without --no-load-run
	noop    benchkit.Run
}

// run builds the binary, measures every concurrency level, prints the report and cleans up.
func run(ctx context.Context, o options) (err error) {
	created, err := benchkit.PrepareDir(o.dir)
	if err != nil {
		return err
	}
	runDir, err := os.MkdirTemp(o.dir, "run-")
	if err != nil {
		return fmt.Errorf("create run dir: %w", err)
	}
	if o.keep {
		fmt.Fprintf(os.Stderr, "keeping data in %s\n", runDir)
	} else {
		defer func() {
			if created == "" {
				created = runDir
			}
			if rmErr := os.RemoveAll(created); rmErr != nil {
				err = errors.Join(err, fmt.Errorf("remove bench dir: %w", rmErr))
			}
		}()
	}

	bin, cleanBin, err := buildBinary(ctx)
	if err != nil {
		return err
	}
	defer cleanBin()

	fmt.Fprintf(os.Stderr, "generating %d corpus events\n", o.poolSize)
	p, err := newPool(o.seed, o.poolSize)
	if err != nil {
		return err
	}
	noop, err := benchkit.Serve("no-op", http.HandlerFunc(benchkit.NoopHandler))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, noop.Close()) }()

	var levels []levelResult
	for _, c := range o.clients {
		lr := levelResult{clients: c}
		spec := runSpec{opts: o, bin: bin, pool: p, clients: c}
		if lr.loads, err = measureServe(ctx, spec, filepath.Join(runDir, fmt.Sprintf("c%d-loads", c)), o.schedule, true); err != nil {
			return err
		}
		if o.noLoadRun {
			r, err := measureServe(ctx, spec, filepath.Join(runDir, fmt.Sprintf("c%d-noloads", c)), "", false)
			if err != nil {
				return err
			}
			lr.noLoads = &r
		}
		if lr.noop, err = measureNoop(ctx, spec, noop.URL); err != nil {
			return err
		}
		levels = append(levels, lr)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("run levels: %w", err)
		}
	}
	printReport(os.Stdout, o, p, levels, benchkit.FSType(runDir))
	for _, lr := range levels {
		if c := lr.loads.check; c.distinct != int64(c.acked) {
			return fmt.Errorf("check warehouse: clients=%d: %d distinct event_ids in events, %d distinct acknowledged", lr.clients, c.distinct, c.acked)
		}
	}
	return nil
}

// runSpec is what every run at one concurrency level shares.
type runSpec struct {
	opts    options
	bin     string
	pool    *pool
	clients int
}

// loop is the client loop of one run: this spec's clients and rate, for d or budget requests.
func (s runSpec) loop(d time.Duration, budget int64) benchkit.Loop {
	return benchkit.Loop{Clients: s.clients, Duration: d, Budget: budget, Rate: s.opts.rate}
}

// newClient returns an HTTP client keeping one connection per closed-loop client.
func newClient(clients int) (*http.Client, func()) {
	transport := &http.Transport{
		MaxIdleConns:        clients,
		MaxIdleConnsPerHost: clients,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &http.Client{Transport: transport, Timeout: clientTimeout}, transport.CloseIdleConnections
}

// measureNoop runs the warm-up and the measured run against the in-process no-op server.
func measureNoop(ctx context.Context, s runSpec, url string) (benchkit.Run, error) {
	client, closeIdle := newClient(s.clients)
	defer closeIdle()
	ids := newIDSource(fmt.Sprintf("c%dnoop", s.clients))
	if s.opts.warmup > 0 {
		drive(ctx, client, s.pool, ids, url, s.loop(s.opts.warmup, 1<<62), nil)
	}
	res := drive(ctx, client, s.pool, ids, url, s.loop(s.opts.duration, s.opts.maxRequests), nil)
	fmt.Fprintf(os.Stderr, "clients=%d no-op: %s\n", s.clients, res.Summary())
	return res, ctx.Err()
}
