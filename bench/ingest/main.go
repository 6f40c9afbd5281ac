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
// Usage:
//
//	go run ./bench/ingest [--clients 1,16,64] [--duration 5s] [--max-requests 200000] [--dir ./bench-data/ingest]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	fl.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole benchmark to this file (labelled role=server|client, target=durable|no-op)")
	if err := fl.Parse(args); err != nil {
		return options{}, err
	}
	if fl.NArg() > 0 {
		return options{}, fmt.Errorf("parse flags: unexpected arguments %q", fl.Args())
	}
	for f := range strings.SplitSeq(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return options{}, fmt.Errorf("parse --clients: %q is not a positive integer", f)
		}
		o.clients = append(o.clients, n)
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

	created, err := prepareDir(o.dir)
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

	durable, err := startDurable(bufDir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, durable.close()) }()
	noop, err := serveLoopback("no-op", http.HandlerFunc(noopHandler))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, noop.close()) }()

	gen := newGenerator(o.bodyBytes)
	var rows []row
	for _, c := range o.clients {
		r, err := measureLevel(ctx, o, gen, durable, noop, c)
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	printReport(os.Stdout, o, gen, rows, fsType(bufDir))
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

// server is one in-process HTTP server on a loopback listener.
type server struct {
	name   string // "durable" or "no-op"; also the "target" profiler label
	url    string
	srv    *http.Server
	served chan error
	reg    *prometheus.Registry // the durable server's metrics; nil for the no-op server
	buf    *buffer.Buffer       // the durable server's log; nil for the no-op server
}

// serveLoopback serves h on 127.0.0.1 at a free port with the http.Server settings of "serve". The goroutines
// serving its connections carry the profiler labels role=server and target=name.
func serveLoopback(name string, h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	cfg := configs.Defaults().Server
	s := &server{
		name: name,
		url:  "http://" + ln.Addr().String() + configs.Defaults().Webhook.Path,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
		},
		served: make(chan error, 1),
	}
	go pprof.Do(context.Background(), pprof.Labels("role", "server", "target", name), func(context.Context) {
		s.served <- s.srv.Serve(ln)
	})
	return s, nil
}

// startDurable opens a buffer in dir and serves the real receiver over it, as "serve" does with the default
// configuration, signatures enforced with one secret.
func startDurable(dir string) (*server, error) {
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
		Path:          cfg.Webhook.Path,
		SignatureMode: configs.SignatureEnforce,
		Verifier:      extract.NewVerifier([]string{secret}, cfg.Webhook.TimestampTolerance, nil),
		MaxBodyBytes:  int64(cfg.Webhook.MaxBodyBytes),
		Store:         buf,
		Registry:      reg,
	})
	s, err := serveLoopback("durable", rc)
	if err != nil {
		buf.Close()
		return nil, err
	}
	s.reg, s.buf = reg, buf
	return s, nil
}

// close shuts the server down gracefully and then closes its buffer, if any.
func (s *server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), configs.Defaults().Server.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("serve http: %w", serveErr))
	}
	if s.buf != nil {
		if bufErr := s.buf.Close(); bufErr != nil {
			err = errors.Join(err, fmt.Errorf("close buffer: %w", bufErr))
		}
	}
	return err
}

// noopHandler reads the whole body and answers 200 with a short JSON body: the most any receiver can do.
func noopHandler(w http.ResponseWriter, r *http.Request) {
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		http.Error(w, "could not read body", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"status":"stored","message":"stored"}`+"\n")
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
	body := g.event()
	t := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(extract.SignatureHeader, "t="+t+",s="+extract.Sign(secret, t, body))
	return req, nil
}

// result is what one measured run produced.
type result struct {
	acks      int
	errors    int
	elapsed   time.Duration
	latencies []time.Duration // of acknowledged requests, sorted
}

// rate is acknowledged requests per second.
func (r result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.acks) / r.elapsed.Seconds()
}

// quantile returns the q-quantile (0..1) of the latencies, or 0 if there are none.
func (r result) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(r.latencies)))) - 1
	return r.latencies[max(i, 0)]
}

// load runs clients closed-loop goroutines against s until the duration has passed or budget requests have
// been started; they carry the profiler labels role=client and target=s.name. Building and signing a body
// happens outside each latency measurement, though inside the loop: every event needs its own eventId, and
// holding max-requests bodies in memory would distort the memory figures.
func load(ctx context.Context, client *http.Client, gen *generator, s *server, clients int, d time.Duration, budget int64) result {
	var (
		left   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		merged result
	)
	left.Store(budget)
	start := time.Now()
	deadline := start.Add(d)
	for range clients {
		wg.Go(func() {
			pprof.Do(ctx, pprof.Labels("role", "client", "target", s.name), func(ctx context.Context) {
				lat, errs := worker(ctx, client, gen, s.url, deadline, &left)
				mu.Lock()
				merged.latencies = append(merged.latencies, lat...)
				merged.errors += errs
				mu.Unlock()
			})
		})
	}
	wg.Wait()
	merged.elapsed = time.Since(start)
	merged.acks = len(merged.latencies)
	slices.Sort(merged.latencies)
	return merged
}

// worker posts events one after another until the deadline, the shared budget or ctx runs out. It returns the
// latencies of acknowledged (200) requests and the number of failed ones.
func worker(ctx context.Context, client *http.Client, gen *generator, url string, deadline time.Time, left *atomic.Int64) ([]time.Duration, int) {
	var lat []time.Duration
	errs := 0
	for ctx.Err() == nil && time.Now().Before(deadline) && left.Add(-1) >= 0 {
		req, err := gen.request(ctx, url)
		if err != nil {
			errs++
			continue
		}
		start := time.Now()
		if post(client, req) {
			lat = append(lat, time.Since(start))
		} else {
			errs++
		}
	}
	return lat, errs
}

// post sends req and reads the whole answer, so the connection can be reused; it reports whether it was a 200.
func post(client *http.Client, req *http.Request) bool {
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err == nil && resp.StatusCode == http.StatusOK
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
	durable result
	noop    result
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
func measure(ctx context.Context, o options, gen *generator, s *server, clients int, beforeRun func() error) (result, error) {
	transport := &http.Transport{
		MaxIdleConns:        clients,
		MaxIdleConnsPerHost: clients,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	runtime.GC()
	fmt.Fprintf(os.Stderr, "clients=%d %s: warming up\n", clients, s.name)
	if o.warmup > 0 {
		load(ctx, client, gen, s, clients, o.warmup, math.MaxInt64)
	}
	if beforeRun != nil {
		if err := beforeRun(); err != nil {
			return result{}, err
		}
	}
	res := load(ctx, client, gen, s, clients, o.duration, o.maxRequests)
	fmt.Fprintf(os.Stderr, "clients=%d %s: %d acks, %d errors in %v\n", clients, s.name, res.acks, res.errors, res.elapsed.Round(time.Millisecond))
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
		if r.noop.rate() > 0 {
			ratio = r.durable.rate() / r.noop.rate()
		}
		fmt.Fprintf(w, "| %d | %.0f | %s | %s | %.0f | %s | %s | %.2f | %s |\n", r.clients,
			r.durable.rate(), fmtDuration(r.durable.quantile(0.5)), fmtDuration(r.durable.quantile(0.99)),
			r.noop.rate(), fmtDuration(r.noop.quantile(0.5)), fmtDuration(r.noop.quantile(0.99)),
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
		fmt.Fprintf(w, "| %d | %d | %d | %.0f | %s | %d | %d |\n", r.clients, r.durable.acks, r.durable.errors,
			r.commit.fsyncs, fmtDuration(meanFsync), r.noop.acks, r.noop.errors)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Machine: %d CPUs (runtime.NumCPU), %s/%s, %s, %s; --dir file system: %s.\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, cpuModel(), runtime.Version(), dirFS)
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

// fmtDuration prints microseconds below a millisecond and milliseconds with two decimals above.
func fmtDuration(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	v := procField("/proc/cpuinfo", "model name")
	if v == "" {
		return "unknown CPU"
	}
	return v
}

// peakRSS returns VmHWM from /proc/self/status, or "unknown".
func peakRSS() string {
	v := procField("/proc/self/status", "VmHWM")
	if v == "" {
		return "unknown"
	}
	kb, err := strconv.ParseFloat(strings.TrimSuffix(v, " kB"), 64)
	if err != nil {
		return v
	}
	return fmt.Sprintf("%.1f MiB", kb/1024)
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
