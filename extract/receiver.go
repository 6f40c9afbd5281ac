// Package extract receives SendPilot webhooks over HTTP and makes each accepted delivery durable in the
// buffer before answering. It treats payloads as opaque JSON plus a small envelope: it reads eventId and
// eventType when it can, and never interprets data.
//
// Answers (also in docs/http-api.md):
//
//	200  stored and fsync'd (also for a body that is not JSON: it is stored with a quarantine reason)
//	401  enforce mode and the signature is missing, wrong or stale; nothing stored
//	405  a method other than POST on the webhook path
//	413  the body is larger than the limit; nothing stored
//	400  the body could not be read (client went away or was too slow); nothing stored
//	503  the buffer is full, the disk is full or failing, or the server is shutting down; nothing stored
package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"sendpilot-loader/configs"
	"sendpilot-loader/extract/buffer"
	"sendpilot-loader/extract/envelope"
)

// Store is where accepted deliveries go; *buffer.Buffer is the real one.
type Store interface {
	Append(ctx context.Context, line []byte) error
	Ready() error
}

// Options configure a Receiver.
type Options struct {
	Path          string
	SignatureMode string // configs.SignatureEnforce, SignatureLog or SignatureOff
	Verifier      *Verifier
	MaxBodyBytes  int64
	Store         Store
	Logger        *slog.Logger
	// Registry receives the receiver's metrics and is served on /metrics; nil makes a new one.
	Registry *prometheus.Registry
	Now      func() time.Time
}

// Receiver is the HTTP face of the service.
type Receiver struct {
	opts     Options
	log      *slog.Logger
	requests *prometheus.CounterVec
	bytesIn  prometheus.Counter
	latency  prometheus.Histogram
	mux      *http.ServeMux
	bufs     sync.Pool
}

// Outcome labels of sendpilot_webhook_requests_total; each names one documented answer.
const (
	OutcomeStored       = "stored"        // 200
	OutcomeQuarantined  = "quarantined"   // 200, body kept with a quarantine reason
	OutcomeBadSignature = "bad_signature" // 401
	OutcomeTooLarge     = "too_large"     // 413
	OutcomeReadError    = "read_error"    // 400
	OutcomeBufferFull   = "buffer_full"   // 503
	OutcomeUnavailable  = "unavailable"   // 503: shutting down or the buffer failed
)

// NewReceiver builds the handler for the webhook path, /healthz, /readyz and /metrics.
func NewReceiver(opts Options) *Receiver {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Verifier == nil {
		opts.Verifier = NewVerifier(nil, 0, opts.Now)
	}
	rc := &Receiver{
		opts: opts,
		log:  opts.Logger,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendpilot_webhook_requests_total",
			Help: "Webhook deliveries by outcome (stored, quarantined, bad_signature, too_large, read_error, buffer_full, unavailable).",
		}, []string{"outcome"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendpilot_webhook_received_bytes_total",
			Help: "Body bytes of webhook deliveries that were read whole.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sendpilot_webhook_request_seconds",
			Help:    "Time from the start of a webhook request to its answer, fsync included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
	}
	rc.bufs.New = func() any { return new(bytes.Buffer) }
	opts.Registry.MustRegister(rc.requests, rc.bytesIn, rc.latency)
	for _, o := range []string{OutcomeStored, OutcomeQuarantined, OutcomeBadSignature, OutcomeTooLarge,
		OutcomeReadError, OutcomeBufferFull, OutcomeUnavailable} {
		rc.requests.WithLabelValues(o)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST "+opts.Path, rc.webhook)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", rc.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{Registry: opts.Registry}))
	rc.mux = mux
	return rc
}

// ServeHTTP implements http.Handler. Unknown paths get 404 and wrong methods 405 (from http.ServeMux).
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) { rc.mux.ServeHTTP(w, r) }

func (rc *Receiver) readyz(w http.ResponseWriter, _ *http.Request) {
	if err := rc.opts.Store.Ready(); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ok\n")
}

// webhook handles one delivery: read, verify, wrap, append (fsync), answer.
func (rc *Receiver) webhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	outcome, status, msg, eventID := rc.accept(r)
	rc.requests.WithLabelValues(outcome).Inc()
	rc.latency.Observe(time.Since(start).Seconds())
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "30")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := append(envelope.AppendString([]byte(`{"status":`), outcome), `,"message":`...)
	body = envelope.AppendString(body, msg)
	if eventID != "" {
		body = envelope.AppendString(append(body, `,"event_id":`...), eventID)
	}
	w.Write(append(body, "}\n"...))
}

func (rc *Receiver) accept(r *http.Request) (outcome string, status int, msg, eventID string) {
	max := rc.opts.MaxBodyBytes
	if r.ContentLength > max {
		return OutcomeTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", max), ""
	}
	buf := rc.bufs.Get().(*bytes.Buffer)
	defer rc.release(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(http.MaxBytesReader(nil, r.Body, max)); err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return OutcomeTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", max), ""
		}
		rc.log.Warn("read webhook body", "remote", r.RemoteAddr, "err", err)
		return OutcomeReadError, http.StatusBadRequest, "could not read body", ""
	}
	body := buf.Bytes()
	rc.bytesIn.Add(float64(len(body)))

	env := envelope.Envelope{
		V:          envelope.Version,
		ReceivedAt: rc.opts.Now().UTC(),
		Signature:  envelope.SigUnchecked,
		RemoteAddr: r.RemoteAddr,
		Headers:    keptHeaders(r.Header),
	}
	if rc.opts.SignatureMode != configs.SignatureOff {
		env.Signature = rc.opts.Verifier.Verify(r.Header.Get(SignatureHeader), body)
	}
	if env.Signature != envelope.SigValid && env.Signature != envelope.SigUnchecked {
		if rc.opts.SignatureMode == configs.SignatureEnforce {
			rc.log.Warn("rejected webhook signature", "verdict", env.Signature, "remote", r.RemoteAddr)
			return OutcomeBadSignature, http.StatusUnauthorized, "signature " + env.Signature, ""
		}
		rc.log.Debug("accepting webhook with bad signature (signature_mode=log)", "verdict", env.Signature, "remote", r.RemoteAddr)
	}

	compact := rc.bufs.Get().(*bytes.Buffer)
	defer rc.release(compact)
	compact.Reset()
	classify(&env, body, compact)

	line := rc.bufs.Get().(*bytes.Buffer)
	defer rc.release(line)
	line.Reset()
	line.Write(envelope.AppendLine(line.AvailableBuffer(), &env))

	if err := rc.opts.Store.Append(r.Context(), line.Bytes()); err != nil {
		if errors.Is(err, buffer.ErrFull) {
			rc.log.Warn("buffer full; answering 503", "err", err)
			return OutcomeBufferFull, http.StatusServiceUnavailable, "buffer full, retry later", env.EventID
		}
		rc.log.Error("store webhook", "err", err)
		return OutcomeUnavailable, http.StatusServiceUnavailable, "not stored, retry later", env.EventID
	}
	if env.Quarantine != "" {
		rc.log.Warn("stored webhook in quarantine", "reason", env.Quarantine, "bytes", len(body))
		return OutcomeQuarantined, http.StatusOK, "stored for inspection: " + env.Quarantine, env.EventID
	}
	return OutcomeStored, http.StatusOK, "stored", env.EventID
}

// release returns a pooled buffer unless one huge body grew it; those are left to the garbage collector.
func (rc *Receiver) release(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		rc.bufs.Put(b)
	}
}

// classify fills the payload fields of env from body: compact JSON with eventId/eventType when it is a
// SendPilot-shaped object, otherwise the original bytes with a quarantine reason. scratch holds the compact
// form and must outlive env's use.
func classify(env *envelope.Envelope, body []byte, scratch *bytes.Buffer) {
	if err := json.Compact(scratch, body); err != nil {
		env.Quarantine = "body is not valid JSON: " + err.Error()
		if utf8.Valid(body) {
			env.PayloadText = string(body)
		} else {
			env.PayloadBase64 = append([]byte(nil), body...)
		}
		return
	}
	env.Payload = scratch.Bytes()
	id, typ, isObject := topLevel(env.Payload)
	if !isObject {
		env.Quarantine = "body is JSON but not an object"
		return
	}
	env.EventID = scalarString(id)
	env.EventType = scalarString(typ)
	if env.EventID == "" {
		env.Quarantine = "no eventId"
	}
}

// droppedHeaders are never written to disk: they carry credentials of other systems.
var droppedHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "x-api-key": true,
}

// keptHeaders returns the request headers to record (lower-cased names, values joined by ", "). SendPilot
// documents only webhook-signature and content-type; keeping the rest shows what it really sends. The
// signature header is kept: it is an HMAC, not the secret, and lets a delivery be re-verified later.
func keptHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		lk := strings.ToLower(k)
		if droppedHeaders[lk] {
			continue
		}
		out[lk] = strings.Join(vs, ", ")
	}
	return out
}
