package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"sendpilot-loader/bench/benchkit"
	"sendpilot-loader/bench/corpus"
	"sendpilot-loader/extract"
)

// clientTimeout bounds one request, as SendPilot's own 30 s does.
const clientTimeout = 30 * time.Second

// idPrefix is how every corpus event starts; the eventId value follows it.
const idPrefix = `{"eventId":"`

// pool holds corpus events without their eventId, so that each post can carry a fresh one cheaply: building
// the bodies (up to ~600 KB of JSON each) in the loop would take CPU from the server on a small machine.
type pool struct {
	rests     [][]byte // each event's text after the eventId value, starting with its closing quote
	totalSize int64
	jobs      int // lead extractor and lead database events
}

// newPool generates n corpus events with the given seed.
func newPool(seed uint64, n int) (*pool, error) {
	g := corpus.New(seed, false)
	p := &pool{rests: make([][]byte, 0, n)}
	for range n {
		body, st := g.Next(nil)
		rest, ok := bytes.CutPrefix(body, []byte(idPrefix))
		end := bytes.IndexByte(rest, '"')
		if !ok || end < 0 {
			return nil, fmt.Errorf("generate pool: event does not start with an eventId: %.60q", body)
		}
		p.rests = append(p.rests, rest[end:])
		p.totalSize += int64(len(body))
		if st.Leads > 0 {
			p.jobs++
		}
	}
	return p, nil
}

// meanBytes is the mean body length.
func (p *pool) meanBytes() float64 { return float64(p.totalSize) / float64(len(p.rests)) }

// idSource hands out event IDs unique within a run, and picks the pool event for each.
type idSource struct {
	tag string
	seq atomic.Int64
}

func newIDSource(tag string) *idSource { return &idSource{tag: tag} }

// next returns the next ID and its pool index.
func (s *idSource) next(poolSize int) (string, int) {
	n := s.seq.Add(1)
	return fmt.Sprintf("evt_bench_%s_%09d", s.tag, n), int(n % int64(poolSize))
}

// sampler receives every acknowledged event ID with the time of its acknowledgement.
type sampler interface {
	acked(id string, at time.Time)
}

// result is what one closed-loop run produced.
type result struct {
	acks      int
	errors    int
	firstErr  string
	ackBytes  int64
	elapsed   time.Duration
	latencies []time.Duration // of acknowledged requests, sorted
	ids       []string        // acknowledged event IDs
}

// rate is acknowledged requests per second.
func (r result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.acks) / r.elapsed.Seconds()
}

// mbPerSec is acknowledged body megabytes (10^6) per second.
func (r result) mbPerSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ackBytes) / 1e6 / r.elapsed.Seconds()
}

// quantile returns the q-quantile (0..1) of the latencies, or 0 if there are none.
func (r result) quantile(q float64) time.Duration { return benchkit.Quantile(r.latencies, q) }

// summary is a one-line description for progress output.
func (r result) summary() string {
	s := fmt.Sprintf("%d acks (%.0f/s), %d errors in %v", r.acks, r.rate(), r.errors, r.elapsed.Round(time.Millisecond))
	if r.firstErr != "" {
		s += "; first error: " + r.firstErr
	}
	return s
}

// drive runs clients goroutines posting to url until d has passed or budget requests have been started:
// closed-loop when rate is 0, otherwise together starting at most rate requests per second (an open-loop
// arrival rate, as long as the clients keep up). Every acknowledged event goes to smp when it is not nil.
func drive(ctx context.Context, client *http.Client, p *pool, ids *idSource, url string, clients int, d time.Duration, budget int64, rate float64, smp sampler) result {
	var (
		left   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		merged result
	)
	left.Store(budget)
	start := time.Now()
	deadline := start.Add(d)
	var tokens <-chan time.Time
	if rate > 0 {
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		tokens = tick.C
	}
	for range clients {
		wg.Go(func() {
			r := worker(ctx, client, p, ids, url, deadline, &left, tokens, smp)
			mu.Lock()
			defer mu.Unlock()
			merged.latencies = append(merged.latencies, r.latencies...)
			merged.ids = append(merged.ids, r.ids...)
			merged.errors += r.errors
			merged.ackBytes += r.ackBytes
			if merged.firstErr == "" {
				merged.firstErr = r.firstErr
			}
		})
	}
	wg.Wait()
	merged.elapsed = time.Since(start)
	merged.acks = len(merged.latencies)
	slices.Sort(merged.latencies)
	return merged
}

// worker posts events one after another until the deadline, the shared budget or ctx runs out, taking a token
// before each one when tokens is not nil. Building and signing a body happen outside the latency measurement.
func worker(ctx context.Context, client *http.Client, p *pool, ids *idSource, url string, deadline time.Time, left *atomic.Int64, tokens <-chan time.Time, smp sampler) result {
	var r result
	fail := func(err error) {
		r.errors++
		if r.firstErr == "" {
			r.firstErr = err.Error()
		}
	}
	for ctx.Err() == nil && time.Now().Before(deadline) && left.Add(-1) >= 0 {
		if tokens != nil {
			select {
			case <-tokens:
			case <-time.After(time.Until(deadline)):
				return r
			}
		}
		id, i := ids.next(len(p.rests))
		rest := p.rests[i]
		body := make([]byte, 0, len(idPrefix)+len(id)+len(rest))
		body = append(append(append(body, idPrefix...), id...), rest...)
		req, err := signedRequest(ctx, url, body)
		if err != nil {
			fail(err)
			continue
		}
		start := time.Now()
		if err := post(client, req); err != nil {
			fail(err)
			continue
		}
		now := time.Now()
		r.latencies = append(r.latencies, now.Sub(start))
		r.ids = append(r.ids, id)
		r.ackBytes += int64(len(body))
		if smp != nil {
			smp.acked(id, now)
		}
	}
	return r
}

// signedRequest builds a POST of body to url signed as SendPilot signs it.
func signedRequest(ctx context.Context, url string, body []byte) (*http.Request, error) {
	t := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(extract.SignatureHeader, "t="+t+",s="+extract.Sign(secret, t, body))
	return req, nil
}

// post sends req and reads the whole answer, so the connection can be reused; anything but a 2xx is an error.
func post(client *http.Client, req *http.Request) error {
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
