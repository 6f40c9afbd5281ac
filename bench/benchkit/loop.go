package benchkit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Loop drives concurrent clients, each posting one request after another.
type Loop struct {
	Clients  int
	Duration time.Duration // no request starts after it
	Budget   int64         // requests started, at most, by all clients together
	// Rate, when positive, is the most requests per second all clients together start (an open-loop arrival
	// rate, as long as the clients keep up); 0 is a closed loop, as fast as they go.
	Rate float64
	// Labels are profiler label pairs ("key", "value", …) the client goroutines carry.
	Labels []string
}

// Ack is what one acknowledged request reports.
type Ack struct {
	Latency time.Duration // from sending the request to reading the whole answer
	ID      string        // the event ID, when the caller wants them back
	Bytes   int64         // body bytes
}

// Run is what a Loop measured.
type Run struct {
	Acks      int
	Errors    int
	FirstErr  string
	Bytes     int64 // body bytes of acknowledged requests
	Elapsed   time.Duration
	Latencies []time.Duration // of acknowledged requests, sorted
	IDs       []string        // of acknowledged requests that reported one
}

// Drive runs the loop: each client calls post until the duration, the budget or ctx runs out. post builds
// one request, sends it and reports it; building it is up to post, outside the latency it reports.
func (l Loop) Drive(ctx context.Context, post func(ctx context.Context) (Ack, error)) Run {
	var (
		left   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		merged Run
	)
	left.Store(l.Budget)
	start := time.Now()
	deadline := start.Add(l.Duration)
	var tokens <-chan time.Time
	if l.Rate > 0 {
		tick := time.NewTicker(time.Duration(float64(time.Second) / l.Rate))
		defer tick.Stop()
		tokens = tick.C
	}
	for range l.Clients {
		wg.Go(func() {
			pprof.Do(ctx, pprof.Labels(l.Labels...), func(ctx context.Context) {
				r := client(ctx, deadline, &left, tokens, post)
				mu.Lock()
				defer mu.Unlock()
				merged.Latencies = append(merged.Latencies, r.Latencies...)
				merged.IDs = append(merged.IDs, r.IDs...)
				merged.Errors += r.Errors
				merged.Bytes += r.Bytes
				if merged.FirstErr == "" {
					merged.FirstErr = r.FirstErr
				}
			})
		})
	}
	wg.Wait()
	merged.Elapsed = time.Since(start)
	merged.Acks = len(merged.Latencies)
	slices.Sort(merged.Latencies)
	return merged
}

// client is one client's share of a Loop, taking a token before each request when tokens is not nil.
func client(ctx context.Context, deadline time.Time, left *atomic.Int64, tokens <-chan time.Time, post func(context.Context) (Ack, error)) Run {
	var r Run
	for ctx.Err() == nil && time.Now().Before(deadline) && left.Add(-1) >= 0 {
		if tokens != nil {
			select {
			case <-tokens:
			case <-time.After(time.Until(deadline)):
				return r
			}
		}
		a, err := post(ctx)
		if err != nil {
			r.Errors++
			if r.FirstErr == "" {
				r.FirstErr = err.Error()
			}
			continue
		}
		r.Latencies = append(r.Latencies, a.Latency)
		r.Bytes += a.Bytes
		if a.ID != "" {
			r.IDs = append(r.IDs, a.ID)
		}
	}
	return r
}

// Rate is acknowledged requests per second.
func (r Run) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Acks) / r.Elapsed.Seconds()
}

// MBPerSec is acknowledged body megabytes (10^6) per second.
func (r Run) MBPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds()
}

// Quantile returns the q-quantile (0..1) of the latencies, or 0 if there are none.
func (r Run) Quantile(q float64) time.Duration { return Quantile(r.Latencies, q) }

// Summary is a one-line description for progress output.
func (r Run) Summary() string {
	s := fmt.Sprintf("%d acks (%.0f/s), %d errors in %v", r.Acks, r.Rate(), r.Errors, r.Elapsed.Round(time.Millisecond))
	if r.FirstErr != "" {
		s += "; first error: " + r.FirstErr
	}
	return s
}

// Post sends req and reads the whole answer, so the connection can be reused; anything but a 2xx is an error.
func Post(client *http.Client, req *http.Request) error {
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post event: %w", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post event: status %s", resp.Status)
	}
	return nil
}
