// Package benchkit holds what the benchmark programs share: the description of the machine a figure was
// measured on, latency quantiles and formatting, the loopback HTTP server they run, and the no-op handler they
// compare against.
package benchkit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"sendpilot-loader/configs"
)

// NoopHandler is the peer the receivers are measured against: it reads the whole body, as any handler must,
// and answers as the receiver does, without verifying, storing or syncing anything.
func NoopHandler(w http.ResponseWriter, r *http.Request) {
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		http.Error(w, "could not read body", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"status":"stored","message":"stored"}`+"\n")
}

// Quantile returns the q-quantile (nearest rank) of sorted durations, 0 for none.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// FormatDuration prints a latency in µs, ms or s, whichever reads best.
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// CPUModel returns the CPU's model name from /proc/cpuinfo, or "unknown CPU".
func CPUModel() string {
	if v := ProcField("/proc/cpuinfo", "model name"); v != "" {
		return v
	}
	return "unknown CPU"
}

// LoadAverage returns the 1, 5 and 15 minute load averages from /proc/loadavg, or "unknown".
func LoadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// ProcField returns the value of the first "key: value" line of a /proc file, or "" if there is none.
func ProcField(path, key string) string {
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

// FSType returns the type and device of the file system holding dir, from the longest matching mount point
// in /proc/mounts, or "unknown". Benchmarks that fsync print it: on a tmpfs, fsync costs nothing.
func FSType(dir string) string {
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

// Server is an http.Server on a loopback port, configured as "sendpilot-loader serve" configures its own.
type Server struct {
	Name   string // what it serves, e.g. "durable" or "no-op"; also the "target" profiler label
	URL    string // the webhook URL on it
	srv    *http.Server
	served chan error
}

// Serve serves h on 127.0.0.1 at a port the kernel chooses, with the http.Server timeouts of "serve". The
// goroutines serving its connections carry the profiler labels role=server and target=name.
func Serve(name string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	cfg := configs.Defaults()
	s := &Server{
		Name: name,
		URL:  "http://" + ln.Addr().String() + cfg.Webhook.Path,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
			ReadTimeout:       cfg.Server.ReadTimeout,
			WriteTimeout:      cfg.Server.WriteTimeout,
			IdleTimeout:       cfg.Server.IdleTimeout,
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

// Close shuts the server down gracefully.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), configs.Defaults().Server.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("serve %s: %w", s.Name, serveErr))
	}
	if err != nil {
		return fmt.Errorf("close %s server: %w", s.Name, err)
	}
	return nil
}

// PrepareDir creates dir and returns the topmost directory it had to create, or "" if dir already existed, so
// that cleanup removes exactly what the benchmark created and nothing that was there before.
func PrepareDir(dir string) (string, error) {
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

// ParseLevels reads a comma-separated list of concurrency levels, e.g. "1,16,64", each in 1..1024.
func ParseLevels(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("parse --clients: %q is not an integer in 1..1024", f)
		}
		out = append(out, n)
	}
	return out, nil
}
