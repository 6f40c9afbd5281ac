// Command ingest measures how many signed SendPilot webhooks per second the real receiver can make durable,
// against a no-op HTTP handler that only reads the body: the ceiling that net/http on this machine allows.
//
// Both servers run in this process on their own loopback listener, with the http.Server timeouts of
// "sendpilot-loader serve". For each concurrency level it runs a closed loop against each server (a short
// uncounted warm-up, then a run bounded by --duration and --max-requests) and prints a Markdown table.
//
// The durable server writes to a real buffer in a fresh directory under --dir, with fsync on as in
// production. Keep --dir on the disk you mean to measure: /tmp is often a tmpfs, where fsync costs nothing.
//
// With --serve it measures nothing itself: it starts both servers, writes a wrk script that posts one signed
// event (wrk.lua in --dir), prints the two URLs and a wrk command line for each, and serves until interrupted,
// so that a load generator faster than Go's client (such as wrk) can drive them.
//
// Usage:
//
//	go run ./bench/ingest [--clients 1,16,64] [--duration 5s] [--max-requests 200000] [--dir ./bench-data/ingest]
//	go run ./bench/ingest --serve [--signature-mode off] [--cpuprofile cpu.pprof]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sendpilot-loader/bench/benchkit"
	"sendpilot-loader/configs"
	"sendpilot-loader/extract"
	"sendpilot-loader/extract/buffer"
	"sendpilot-loader/extract/envelope"
)

// secret is the one webhook secret both the clients and the durable receiver use.
const secret = "whsec_bench_ingest"

// Names of the buffer histograms read before and after each durable run.
const (
	metricCommitRecords = "sendpilot_buffer_group_commit_records"
	metricFsyncSeconds  = "sendpilot_buffer_fsync_seconds"
)

// options are the command-line flags.
type options struct {
	clients     []int
	duration    time.Duration
	warmup      time.Duration
	maxRequests int64
	dir         string
	bodyBytes   int
	cpuProfile  string
	serve       bool
	sigMode     string
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		stop()
		os.Exit(1)
	}
}

// parseFlags reads the command line into options.
func parseFlags(args []string) (options, error) {
	var o options
	fl := flag.NewFlagSet("ingest", flag.ContinueOnError)
	clients := fl.String("clients", "1,16,64", "comma-separated concurrency levels (closed-loop clients)")
	fl.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measured run")
	fl.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "uncounted warm-up before each measured run")
	fl.Int64Var(&o.maxRequests, "max-requests", 200000, "stop a measured run after this many requests")
	fl.StringVar(&o.dir, "dir", "./bench-data/ingest", "directory for the durable buffer (not /tmp: it may be a tmpfs)")
	fl.IntVar(&o.bodyBytes, "body-bytes", 200, "approximate length of the message text in each event")
	fl.BoolVar(&o.serve, "serve", false, "only serve both servers for an external load generator (writes <dir>/wrk.lua) until interrupted")
	fl.StringVar(&o.sigMode, "signature-mode", configs.SignatureEnforce, "signature mode of the durable receiver: enforce, log or off")
	fl.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole benchmark to this file (labelled role=server|client, target=durable|no-op)")
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
	switch o.sigMode {
	case configs.SignatureEnforce, configs.SignatureLog, configs.SignatureOff:
	default:
		return options{}, fmt.Errorf("parse flags: --signature-mode %q: want enforce, log or off", o.sigMode)
	}
	if o.duration <= 0 || o.warmup < 0 || o.maxRequests < 1 || o.bodyBytes < 0 {
		return options{}, errors.New("parse flags: --duration and --max-requests must be positive, --warmup and --body-bytes not negative")
	}
	return o, nil
}

// run starts both servers, measures every concurrency level against each, prints the report and cleans up.
func run(ctx context.Context, o options) (err error) {
	if o.cpuProfile != "" {
		stopProfile, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}

	created, err := benchkit.PrepareDir(o.dir)
	if err != nil {
		return err
	}
	bufDir, err := os.MkdirTemp(o.dir, "buffer-")
	if err != nil {
		return fmt.Errorf("create buffer dir: %w", err)
	}
	defer func() {
		if created == "" {
			created = bufDir
		}
		if rmErr := os.RemoveAll(created); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove bench dir: %w", rmErr))
		}
	}()

	durable, err := startDurable(bufDir, o.sigMode)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, durable.close()) }()
	noopHS, err := benchkit.Serve("no-op", http.HandlerFunc(benchkit.NoopHandler))
	if err != nil {
		return err
	}
	noop := &server{Server: noopHS}
	defer func() { err = errors.Join(err, noop.close()) }()

	gen := newGenerator(o.bodyBytes)
	if o.serve {
		return serveOnly(ctx, o, gen, durable, noop)
	}
	var rows []row
	for _, c := range o.clients {
		r, err := measureLevel(ctx, o, gen, durable, noop, c)
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	printReport(os.Stdout, o, gen, rows, benchkit.FSType(bufDir))
	return nil
}

// startCPUProfile starts profiling the whole process into path and returns the function that stops it.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("start cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// server is one in-process HTTP server on a loopback listener.
type server struct {
	*benchkit.Server
	reg *prometheus.Registry // the durable server's metrics; nil for the no-op server
	buf *buffer.Buffer       // the durable server's log; nil for the no-op server
}

// serveOnly writes the wrk script, prints how to drive both servers, and waits for ctx to end.
func serveOnly(ctx context.Context, o options, gen *generator, durable, noop *server) error {
	script := filepath.Join(o.dir, "wrk.lua")
	req, err := gen.request(ctx, durable.URL)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return fmt.Errorf("read request body: %w", err)
	}
	if err := os.WriteFile(script, wrkScript(req.Header.Get(extract.SignatureHeader), body), 0o644); err != nil {
		return fmt.Errorf("write wrk script: %w", err)
	}
	fmt.Printf("durable receiver (signature mode %s): %s\nno-op handler: %s\n", o.sigMode, durable.URL, noop.URL)
	for _, s := range []*server{noop, durable} {
		fmt.Printf("wrk -t2 -c64 -d10s -s %s %s\n", script, s.URL)
	}
	fmt.Println("serving until interrupted (Ctrl-C)")
	<-ctx.Done()
	return nil
}

// wrkScript is a wrk Lua script that posts body with the given signature header on every request: one
// signed event, sent again and again (the receiver stores each copy; the warehouse would keep one).
func wrkScript(signature string, body []byte) []byte {
	q := func(s string) string { return strconv.Quote(s) } // Lua reads Go's quoted ASCII strings as they are
	return fmt.Appendf(nil, "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"+
		"wrk.headers[%s] = %s\nwrk.body = %s\n", q(extract.SignatureHeader), q(signature), q(string(body)))
}

// startDurable opens a buffer in dir and serves the real receiver over it, as "serve" does with the default
// configuration, with one secret and the given signature mode.
func startDurable(dir, sigMode string) (*server, error) {
	cfg := configs.Defaults()
	reg := prometheus.NewRegistry()
	var buf *buffer.Buffer
	var err error
	// The buffer's writer goroutine inherits the labels, so its CPU time shows up under the durable server.
	pprof.Do(context.Background(), pprof.Labels("role", "server", "target", "durable"), func(context.Context) {
		buf, err = buffer.Open(dir, buffer.Options{
			SegmentMaxBytes: int64(cfg.Buffer.SegmentMaxBytes),
			SegmentMaxAge:   cfg.Buffer.SegmentMaxAge,
			MaxBytes:        int64(cfg.Buffer.MaxBytes),
			MinFreeBytes:    int64(cfg.Buffer.MinFreeBytes),
			Registerer:      reg,
			RecordTime:      envelope.ReceivedAt,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("open buffer: %w", err)
	}
	rc := extract.NewReceiver(extract.Options{
		Path:             cfg.Webhook.Path,
		SignatureMode:    sigMode,
		Verifier:         extract.NewVerifier([]string{secret}, cfg.Webhook.TimestampTolerance, nil),
		MaxBodyBytes:     int64(cfg.Webhook.MaxBodyBytes),
		MaxInflightBytes: int64(cfg.Webhook.MaxInflightBytes),
		Store:            buf,
		Registry:         reg,
	})
	hs, err := benchkit.Serve("durable", rc)
	if err != nil {
		buf.Close()
		return nil, err
	}
	return &server{Server: hs, reg: reg, buf: buf}, nil
}

// close shuts the server down gracefully and then closes its buffer, if any.
func (s *server) close() error {
	err := s.Close()
	if s.buf != nil {
		if bufErr := s.buf.Close(); bufErr != nil {
			err = errors.Join(err, fmt.Errorf("close buffer: %w", bufErr))
		}
	}
	return err
}

// generator builds signed SendPilot events, each with an eventId unique within the process.
type generator struct {
	seq       atomic.Uint64
	message   []byte // the JSON-encoded message text, the same in every event
	timestamp string
}

// sampleText is repeated to make the message text of an event.
const sampleText = "Hi Jane, thanks for connecting! I noticed your team at Acme Analytics is growing its " +
	"data platform group this quarter. We help teams like yours cut pipeline maintenance by half. " +
	"Would you be open to a short call next week to compare notes? "

// newGenerator returns a generator whose events carry about textBytes of message text.
func newGenerator(textBytes int) *generator {
	text := strings.Repeat(sampleText, textBytes/len(sampleText)+1)[:textBytes]
	msg, _ := json.Marshal(strings.TrimSpace(text)) // marshalling a string cannot fail
	return &generator{message: msg, timestamp: time.Now().UTC().Format("2006-01-02T15:04:05.000Z")}
}

// event returns the body of the next event.
func (g *generator) event() []byte {
	n := g.seq.Add(1)
	return fmt.Appendf(make([]byte, 0, 512+len(g.message)),
		`{"eventId":"evt_%012d","eventType":"message.sent","timestamp":%q,"workspaceId":"ws_abc123xyz",`+
			`"data":{"leadId":"lead_%010x","campaignId":"camp_%04d","linkedinUrl":"https://www.linkedin.com/in/jane-doe-%06d/",`+
			`"senderId":"sender_%03d","message":%s,"sequenceStep":%d}}`,
		n, g.timestamp, n*2654435761%(1<<40), n%97, n%1000003, n%17, g.message, n%5+1)
}

// request returns a new signed POST of the next event to url.
func (g *generator) request(ctx context.Context, url string) (*http.Request, error) {
	return extract.NewSignedRequest(ctx, url, secret, g.event())
}

// load runs clients closed-loop goroutines against s until the duration has passed or budget requests have
// been started; they carry the profiler labels role=client and target=s.Name. Building and signing a body
// happens outside each latency measurement, though inside the loop: every event needs its own eventId, and
// holding max-requests bodies in memory would distort the memory figures.
func load(ctx context.Context, client *http.Client, gen *generator, s *server, clients int, d time.Duration, budget int64) benchkit.Run {
	loop := benchkit.Loop{Clients: clients, Duration: d, Budget: budget, Labels: []string{"role", "client", "target", s.Name}}
	return loop.Drive(ctx, func(ctx context.Context) (benchkit.Ack, error) {
		req, err := gen.request(ctx, s.URL)
		if err != nil {
			return benchkit.Ack{}, err
		}
		start := time.Now()
		if err := benchkit.Post(client, req); err != nil {
			return benchkit.Ack{}, err
		}
		return benchkit.Ack{Latency: time.Since(start)}, nil
	})
}

// commitStats are running totals of the buffer's group-commit and fsync histograms.
type commitStats struct {
	records, commits     float64
	fsyncs, fsyncSeconds float64
}

// sub returns the totals accumulated between earlier and s.
func (s commitStats) sub(earlier commitStats) commitStats {
	return commitStats{
		records:      s.records - earlier.records,
		commits:      s.commits - earlier.commits,
		fsyncs:       s.fsyncs - earlier.fsyncs,
		fsyncSeconds: s.fsyncSeconds - earlier.fsyncSeconds,
	}
}

// gatherCommitStats reads the buffer's histograms from reg.
func gatherCommitStats(reg prometheus.Gatherer) (commitStats, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return commitStats{}, fmt.Errorf("gather metrics: %w", err)
	}
	var s commitStats
	for _, mf := range mfs {
		if len(mf.GetMetric()) == 0 {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		switch mf.GetName() {
		case metricCommitRecords:
			s.records, s.commits = h.GetSampleSum(), float64(h.GetSampleCount())
		case metricFsyncSeconds:
			s.fsyncSeconds, s.fsyncs = h.GetSampleSum(), float64(h.GetSampleCount())
		}
	}
	return s, nil
}

// row is one concurrency level's measurements.
type row struct {
	clients int
	durable benchkit.Run
	noop    benchkit.Run
	commit  commitStats // of the durable run only
}

// measureLevel measures both servers at one concurrency level.
func measureLevel(ctx context.Context, o options, gen *generator, durable, noop *server, clients int) (row, error) {
	r := row{clients: clients}
	before, err := gatherCommitStats(durable.reg)
	if err != nil {
		return row{}, err
	}
	r.durable, err = measure(ctx, o, gen, durable, clients, func() error {
		before, err = gatherCommitStats(durable.reg)
		return err
	})
	if err != nil {
		return row{}, err
	}
	after, err := gatherCommitStats(durable.reg)
	if err != nil {
		return row{}, err
	}
	r.commit = after.sub(before)
	if r.noop, err = measure(ctx, o, gen, noop, clients, nil); err != nil {
		return row{}, err
	}
	return r, ctx.Err()
}

// measure warms s up with clients connections, calls beforeRun (if not nil), then runs the measured load.
func measure(ctx context.Context, o options, gen *generator, s *server, clients int, beforeRun func() error) (benchkit.Run, error) {
	transport := &http.Transport{
		MaxIdleConns:        clients,
		MaxIdleConnsPerHost: clients,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	runtime.GC()
	fmt.Fprintf(os.Stderr, "clients=%d %s: warming up\n", clients, s.Name)
	if o.warmup > 0 {
		load(ctx, client, gen, s, clients, o.warmup, math.MaxInt64)
	}
	if beforeRun != nil {
		if err := beforeRun(); err != nil {
			return benchkit.Run{}, err
		}
	}
	res := load(ctx, client, gen, s, clients, o.duration, o.maxRequests)
	fmt.Fprintf(os.Stderr, "clients=%d %s: %d acks, %d errors in %v\n", clients, s.Name, res.Acks, res.Errors, res.Elapsed.Round(time.Millisecond))
	return res, nil
}

// printReport writes the Markdown tables, the machine description and the memory line.
func printReport(w io.Writer, o options, gen *generator, rows []row, dirFS string) {
	fmt.Fprintf(w, "Closed loop, %v per run (max %d requests) after a %v warm-up; event body %d bytes.\n\n",
		o.duration, o.maxRequests, o.warmup, len(gen.event()))
	fmt.Fprintln(w, "| clients | durable acks/s | p50 | p99 | no-op req/s | p50 | p99 | ratio durable/no-op | mean records per fsync |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		ratio := 0.0
		if r.noop.Rate() > 0 {
			ratio = r.durable.Rate() / r.noop.Rate()
		}
		fmt.Fprintf(w, "| %d | %.0f | %s | %s | %.0f | %s | %s | %.2f | %s |\n", r.clients,
			r.durable.Rate(), benchkit.FormatDuration(r.durable.Quantile(0.5)), benchkit.FormatDuration(r.durable.Quantile(0.99)),
			r.noop.Rate(), benchkit.FormatDuration(r.noop.Quantile(0.5)), benchkit.FormatDuration(r.noop.Quantile(0.99)),
			ratio, perCommit(r.commit.records, r.commit.commits))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| clients | durable acks | durable errors | fsyncs | mean fsync | no-op acks | no-op errors |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		meanFsync := time.Duration(0)
		if r.commit.fsyncs > 0 {
			meanFsync = time.Duration(r.commit.fsyncSeconds / r.commit.fsyncs * float64(time.Second))
		}
		fmt.Fprintf(w, "| %d | %d | %d | %.0f | %s | %d | %d |\n", r.clients, r.durable.Acks, r.durable.Errors,
			r.commit.fsyncs, benchkit.FormatDuration(meanFsync), r.noop.Acks, r.noop.Errors)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Machine: %d CPUs (runtime.NumCPU), %s/%s, %s, %s; --dir file system: %s.\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, benchkit.CPUModel(), runtime.Version(), dirFS)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(w, "Memory (one process holds both servers and all clients): peak RSS (VmHWM) %s, Go heap in use at end %.1f MiB.\n",
		peakRSS(), float64(ms.HeapInuse)/(1<<20))
}

// perCommit formats sum/count, or "-" when there were no commits.
func perCommit(sum, count float64) string {
	if count == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", sum/count)
}

// peakRSS returns VmHWM from /proc/self/status, or "unknown".
func peakRSS() string {
	v := benchkit.ProcField("/proc/self/status", "VmHWM")
	if v == "" {
		return "unknown"
	}
	kb, err := strconv.ParseFloat(strings.TrimSuffix(v, " kB"), 64)
	if err != nil {
		return v
	}
	return fmt.Sprintf("%.1f MiB", kb/1024)
}
