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
//	503  the in-flight bytes are over their budget, the buffer is full, the disk is full or failing, or the
//	     server is shutting down; nothing stored
//
// Memory: a body is held once, in the buffer that becomes its envelope line, and every byte of those buffers
// is reserved in a budget (Options.MaxInflightBytes) before it is allocated, so the bodies in flight never
// take more than the budget. The signature is computed as the body arrives; in enforce mode a delivery whose
// header already rules it out is answered before its body is read.
package extract

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
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

// Store is where accepted deliveries go; *buffer.Buffer is the real one. The receiver reuses a line's memory
// once Append returns.
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
	// MaxInflightBytes bounds the memory that bodies being received or stored hold, all requests together; a
	// delivery that would pass it is answered 503 and not stored. It must be at least MaxBodyBytes plus a few
	// KiB of envelope, or the largest bodies are never accepted. Zero means no bound.
	MaxInflightBytes int64
	Store            Store
	Logger           *slog.Logger
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
	outcomes map[string]prometheus.Counter // requests by outcome, resolved once
	lines    bufPool                       // body buffers, at most pooledLineBytes each
	small    bufPool                       // envelope heads and answers, at most pooledSmallBytes each
	headers  sync.Pool                     // of *[]envelope.Header, cleared
	budget   budget
}

// Outcome labels of sendpilot_webhook_requests_total; each names one documented answer.
const (
	OutcomeStored       = "stored"        // 200
	OutcomeQuarantined  = "quarantined"   // 200, body kept with a quarantine reason
	OutcomeBadSignature = "bad_signature" // 401
	OutcomeTooLarge     = "too_large"     // 413
	OutcomeReadError    = "read_error"    // 400
	OutcomeBusy         = "busy"          // 503: the in-flight bytes would pass their budget
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
			Help: "Webhook deliveries by outcome (stored, quarantined, bad_signature, too_large, read_error, busy, buffer_full, unavailable).",
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
		budget: budget{limit: opts.MaxInflightBytes},
		lines:  bufPool{max: pooledLineBytes},
		small:  bufPool{max: pooledSmallBytes},
	}
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sendpilot_webhook_inflight_bytes",
		Help: "Bytes reserved for the bodies of webhook deliveries being received or stored (bounded by webhook.max_inflight_bytes).",
	}, func() float64 { return float64(rc.budget.used.Load()) })
	opts.Registry.MustRegister(rc.requests, rc.bytesIn, rc.latency, inflight)
	rc.headers.New = func() any { return new([]envelope.Header) }
	rc.outcomes = make(map[string]prometheus.Counter)
	for _, o := range []string{OutcomeStored, OutcomeQuarantined, OutcomeBadSignature, OutcomeTooLarge,
		OutcomeReadError, OutcomeBusy, OutcomeBufferFull, OutcomeUnavailable} {
		rc.outcomes[o] = rc.requests.WithLabelValues(o)
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

// webhook handles one delivery: check the signature header, reserve memory, read the body while its HMAC is
// computed, wrap it, append it (fsync), answer.
func (rc *Receiver) webhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	outcome, status, msg, eventID := rc.accept(r)
	rc.outcomes[outcome].Inc()
	rc.latency.Observe(time.Since(start).Seconds())
	h := w.Header()
	if status == http.StatusServiceUnavailable {
		h["Retry-After"] = retryAfter
	}
	h["Content-Type"] = contentTypeJSON
	w.WriteHeader(status)
	buf := rc.small.get(0)
	defer rc.small.put(buf)
	body := append(envelope.AppendString(append((*buf)[:0], `{"status":`...), outcome), `,"message":`...)
	body = envelope.AppendString(body, msg)
	if eventID != "" {
		body = envelope.AppendString(append(body, `,"event_id":`...), eventID)
	}
	*buf = append(body, "}\n"...)
	w.Write(*buf)
}

// Header values of every answer, shared: net/http only reads them.
var (
	contentTypeJSON = []string{"application/json"}
	retryAfter      = []string{"30"}
)

// headBound is at least the length of the envelope head of env, whatever its verdict and before the keys the
// body decides: envelope.AppendString writes at most envelope.MaxQuotedBytes for each byte of a string, and
// the fixed keys, a verdict and the receive time take less than 192.
func headBound(env *envelope.Envelope) int {
	const q = envelope.MaxQuotedBytes
	n := 192 + q*len(env.RemoteAddr)
	for _, h := range env.HeaderList {
		n += q*(len(h.Name)+len(h.Value)) + 6
	}
	return n
}

// headSlack is room left in front of a body for the envelope keys that only the body decides (event_id,
// event_type, quarantine): enough for SendPilot's IDs and every quarantine reason of a JSON body.
const headSlack = 512

// accept decides the answer to one delivery.
func (rc *Receiver) accept(r *http.Request) (outcome string, status int, msg, eventID string) {
	max := rc.opts.MaxBodyBytes
	if r.ContentLength > max {
		return OutcomeTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", max), ""
	}
	var check *Check
	if rc.opts.SignatureMode != configs.SignatureOff {
		check = rc.opts.Verifier.Begin(r.Header.Get(SignatureHeader))
		if verdict, bad := check.Rejected(); bad && rc.opts.SignatureMode == configs.SignatureEnforce {
			check.Verdict() // releases its MACs
			rc.log.Warn("rejected webhook signature", "verdict", verdict, "remote", r.RemoteAddr)
			return OutcomeBadSignature, http.StatusUnauthorized, "signature " + verdict, ""
		}
	}
	env := envelope.Envelope{
		V:          envelope.Version,
		ReceivedAt: rc.opts.Now().UTC(),
		RemoteAddr: r.RemoteAddr,
	}
	headers := rc.getHeaders()
	defer rc.putHeaders(headers)
	env.HeaderList = keptHeaders((*headers)[:0], r.Header)
	*headers = env.HeaderList
	scratch := rc.small.get(0)
	defer rc.small.put(scratch)
	gap := headBound(&env) + headSlack

	res := rc.budget.reserve()
	defer res.release()
	line, err := rc.readBody(r, gap, check, &res)
	if line != nil {
		defer rc.lines.put(line)
	}
	env.Signature = envelope.SigUnchecked
	if check != nil {
		env.Signature = check.Verdict()
	}
	switch {
	case err == nil:
	case errors.Is(err, errOverBudget):
		rc.log.Warn("in-flight body bytes would pass their budget; answering 503", "limit", rc.budget.limit, "content_length", r.ContentLength)
		return OutcomeBusy, http.StatusServiceUnavailable, "too many bytes in flight, retry later", ""
	case errors.As(err, new(*http.MaxBytesError)):
		return OutcomeTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", max), ""
	default:
		rc.log.Warn("read webhook body", "remote", r.RemoteAddr, "err", err)
		return OutcomeReadError, http.StatusBadRequest, "could not read body", ""
	}
	bodyLen := len(*line) - gap
	rc.bytesIn.Add(float64(bodyLen))

	if env.Signature != envelope.SigValid && env.Signature != envelope.SigUnchecked {
		if rc.opts.SignatureMode == configs.SignatureEnforce {
			rc.log.Warn("rejected webhook signature", "verdict", env.Signature, "remote", r.RemoteAddr)
			return OutcomeBadSignature, http.StatusUnauthorized, "signature " + env.Signature, ""
		}
		rc.log.Debug("accepting webhook with bad signature (signature_mode=log)", "verdict", env.Signature, "remote", r.RemoteAddr)
	}

	record, ok := rc.wrap(&env, *line, gap, scratch, &res)
	if !ok {
		rc.log.Warn("in-flight body bytes would pass their budget; answering 503", "limit", rc.budget.limit, "bytes", bodyLen)
		return OutcomeBusy, http.StatusServiceUnavailable, "too many bytes in flight, retry later", ""
	}
	if err := rc.opts.Store.Append(r.Context(), record); err != nil {
		if errors.Is(err, buffer.ErrFull) {
			rc.log.Warn("buffer full; answering 503", "err", err)
			return OutcomeBufferFull, http.StatusServiceUnavailable, "buffer full, retry later", env.EventID
		}
		rc.log.Error("store webhook", "err", err)
		return OutcomeUnavailable, http.StatusServiceUnavailable, "not stored, retry later", env.EventID
	}
	if env.Quarantine != "" {
		rc.log.Warn("stored webhook in quarantine", "reason", env.Quarantine, "bytes", bodyLen)
		return OutcomeQuarantined, http.StatusOK, "stored for inspection: " + env.Quarantine, env.EventID
	}
	return OutcomeStored, http.StatusOK, "stored", env.EventID
}

// errOverBudget means a body would take the in-flight bytes past their budget.
var errOverBudget = errors.New("in-flight body bytes over their budget")

// readChunk is the first size of the buffer for a body of unknown length; it doubles as the body grows.
const readChunk = 32 << 10

// readBody reads the body into a line buffer after gap bytes of room, feeding check (when not nil) as the
// bytes arrive, and returns the buffer with the body at [gap:]. Every byte of the buffer's capacity is
// reserved in res before it is allocated: all at once when Content-Length is known, as it grows otherwise.
// The buffer keeps one spare byte of capacity for the envelope's closing brace.
func (rc *Receiver) readBody(r *http.Request, gap int, check *Check, res *reservation) (*[]byte, error) {
	max := rc.opts.MaxBodyBytes
	size := gap + readChunk
	if r.ContentLength >= 0 {
		size = gap + int(r.ContentLength) + 1
	}
	if !res.grow(int64(size)) {
		return nil, errOverBudget
	}
	line := rc.lines.get(size)
	res.force(int64(cap(*line) - size)) // a pooled buffer may be larger, by less than pooledLineBytes
	*line = (*line)[:gap]
	src := http.MaxBytesReader(nil, r.Body, max)
	for {
		buf := *line
		if len(buf) == cap(buf) {
			grown := min(2*cap(buf), gap+int(max)+1)
			if grown <= cap(buf) || !res.grow(int64(grown)) {
				// grown <= cap cannot happen: MaxBytesReader errs before the body passes max.
				return line, errOverBudget
			}
			bigger := rc.lines.get(grown)
			*bigger = append((*bigger)[:0], buf...)
			old := int64(cap(buf))
			rc.lines.put(line)
			res.shrink(old)
			res.force(int64(cap(*bigger) - grown))
			line, buf = bigger, *bigger
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		if check != nil {
			check.Write(buf[len(buf) : len(buf)+n])
		}
		*line = buf[:len(buf)+n]
		if err == io.EOF {
			return line, nil
		}
		if err != nil {
			return line, err
		}
	}
}

// wrap turns the line buffer holding the body at [gap:] into the envelope line and returns it. A JSON body is
// validated in one pass (scanJSON), compacted where it lies if it has white space to lose, and the head is
// written just in front of it, so the line is the body's only copy. A body that is not JSON is quoted or base64-encoded into scratch, whose bytes are
// reserved in res first; ok is false when the budget has no room for them.
func (rc *Receiver) wrap(env *envelope.Envelope, line []byte, gap int, scratch *[]byte, res *reservation) (record []byte, ok bool) {
	body := line[gap:]
	scan, valid := scanJSON(body)
	if !valid {
		syntax := json.Unmarshal(body, new(struct{})) // the scanner's error, found before any value is built
		env.Quarantine = "body is not valid JSON: " + syntax.Error()
		text := utf8.Valid(body)
		need := gap + len(env.Quarantine)
		if text {
			need += 2*len(body) + envelope.QuotedGrowth(body) // the string and its quoted form
		} else {
			need += 2*base64.StdEncoding.EncodedLen(len(body)) + len(`,"payload_base64":""`) // encoded, then appended
		}
		if !res.grow(int64(need)) {
			return nil, false
		}
		if text {
			env.PayloadText = string(body)
		} else {
			env.PayloadBase64 = body
		}
		*scratch = envelope.AppendLine((*scratch)[:0], env)
		return *scratch, true
	}
	payload, id, typ := body, scan.id, scan.typ
	if scan.spaced {
		payload = compactValid(body)
		id, typ, _ = topLevel(payload)
	}
	env.Payload = payload
	if !scan.object {
		env.Quarantine = "body is JSON but not an object"
	} else {
		env.EventID = scalarString(id)
		env.EventType = scalarString(typ)
		if env.EventID == "" {
			env.Quarantine = "no eventId"
		}
	}
	*scratch = envelope.AppendHead((*scratch)[:0], env)
	head := *scratch
	if len(head) > gap {
		// An eventId or eventType longer than the slack: build the line anew, once.
		need := len(head) + len(payload) + 1
		if !res.grow(int64(need)) {
			return nil, false
		}
		out := make([]byte, 0, need)
		return append(append(append(out, head...), payload...), '}'), true
	}
	start := gap - len(head)
	copy(line[start:], head)
	// Within capacity: compaction only shortens the body, and readBody keeps one spare byte.
	return append(line[start:gap+len(payload)], '}'), true
}

// compactValid removes the insignificant white space of a valid JSON document in place and returns the
// shortened document: the bytes json.Compact would write.
func compactValid(doc []byte) []byte {
	w := 0
	inString := false
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		if inString {
			doc[w] = c
			w++
			switch c {
			case '\\':
				i++
				doc[w] = doc[i]
				w++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			inString = true
		}
		doc[w] = c
		w++
	}
	return doc[:w]
}

// pooledLineBytes is the largest body buffer kept for reuse; bigger ones are left to the garbage collector.
// pooledSmallBytes is the largest kept of the buffers that usually hold a few hundred bytes (an envelope's
// head, an answer): in one pool with the bodies they took and kept buffers sized for bodies, up to 1 MiB each
// that no budget counted (under 64 connections, about 60 MB of the heap, against a 40 MiB budget for bodies).
const (
	pooledLineBytes  = 1 << 20
	pooledSmallBytes = 8 << 10
)

// bufPool recycles byte buffers of at most max bytes of capacity; bigger ones are left to the collector.
type bufPool struct {
	pool sync.Pool // of *[]byte
	max  int
}

// get returns an empty buffer with at least size bytes of capacity, from the pool when size is at most max.
func (p *bufPool) get(size int) *[]byte {
	if size <= p.max {
		if b, ok := p.pool.Get().(*[]byte); ok {
			if cap(*b) < size {
				*b = make([]byte, 0, size)
			}
			*b = (*b)[:0]
			return b
		}
	}
	b := make([]byte, 0, size)
	return &b
}

// put returns a buffer to the pool unless it has grown past max.
func (p *bufPool) put(b *[]byte) {
	if cap(*b) <= p.max {
		p.pool.Put(b)
	}
}

// pooledHeaders is the most headers a pooled header list keeps room for.
const pooledHeaders = 64

func (rc *Receiver) getHeaders() *[]envelope.Header { return rc.headers.Get().(*[]envelope.Header) }

// putHeaders clears a header list, so the pool holds no request's strings, and pools it unless it is large.
func (rc *Receiver) putHeaders(h *[]envelope.Header) {
	if cap(*h) <= pooledHeaders {
		clear((*h)[:cap(*h)])
		*h = (*h)[:0]
		rc.headers.Put(h)
	}
}

// droppedHeaders are never written to disk: they carry credentials of other systems.
var droppedHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "cookie": true, "x-api-key": true,
}

// headerNames maps the canonical form of header names that deliveries commonly carry to the name recorded
// ("" for a dropped header), so that recording them costs one lookup and no allocation.
var headerNames = func() map[string]string {
	m := make(map[string]string)
	for _, k := range []string{"Accept", "Accept-Encoding", "Cdn-Loop", "Cf-Connecting-Ip", "Cf-Ipcountry", "Cf-Ray",
		"Cf-Visitor", "Connection", "Content-Encoding", "Content-Length", "Content-Type", "Forwarded", "Traceparent",
		"Tracestate", "True-Client-Ip", "User-Agent", "Via", "Webhook-Signature", "X-Amzn-Trace-Id", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id"} {
		m[k] = strings.ToLower(k)
	}
	for k := range droppedHeaders {
		m[http.CanonicalHeaderKey(k)] = ""
	}
	return m
}()

// keptHeaders appends to dst the request headers to record, sorted by name (lower-cased; values joined by
// ", "; names that differ only in case, which net/http's server never produces, become one). SendPilot
// documents only webhook-signature and content-type; keeping the rest shows what it really sends. The
// signature header is kept: it is an HMAC, not the secret, and lets a delivery be re-verified later.
func keptHeaders(dst []envelope.Header, h http.Header) []envelope.Header {
	start := len(dst)
	for k, vs := range h {
		name, known := headerNames[k]
		if !known {
			name = strings.ToLower(k)
			if droppedHeaders[name] {
				name = ""
			}
		}
		if name == "" {
			continue
		}
		dst = append(dst, envelope.Header{Name: name, Value: strings.Join(vs, ", ")})
	}
	list := dst[start:]
	slices.SortStableFunc(list, func(a, b envelope.Header) int { return strings.Compare(a.Name, b.Name) })
	merged := list[:0]
	for _, hd := range list {
		if n := len(merged); n > 0 && merged[n-1].Name == hd.Name {
			merged[n-1].Value += ", " + hd.Value
			continue
		}
		merged = append(merged, hd)
	}
	return dst[:start+len(merged)]
}
