package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
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

// drive posts events of the pool to url as loop says, each with a fresh ID, and hands every acknowledged event
// to smp when it is not nil. Building and signing a body happen outside the latency measurement.
func drive(ctx context.Context, client *http.Client, p *pool, ids *idSource, url string, loop benchkit.Loop, smp sampler) benchkit.Run {
	return loop.Drive(ctx, func(ctx context.Context) (benchkit.Ack, error) {
		id, i := ids.next(len(p.rests))
		rest := p.rests[i]
		body := make([]byte, 0, len(idPrefix)+len(id)+len(rest))
		body = append(append(append(body, idPrefix...), id...), rest...)
		req, err := extract.NewSignedRequest(ctx, url, secret, body)
		if err != nil {
			return benchkit.Ack{}, err
		}
		start := time.Now()
		if err := benchkit.Post(client, req); err != nil {
			return benchkit.Ack{}, err
		}
		now := time.Now()
		if smp != nil {
			smp.acked(id, now)
		}
		return benchkit.Ack{Latency: now.Sub(start), ID: id, Bytes: int64(len(body))}, nil
	})
}
