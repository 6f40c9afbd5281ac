package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sendpilot-loader/configs"
	"sendpilot-loader/extract/buffer"
	"sendpilot-loader/extract/envelope"
)

const secret = "whsec_test"

type fixture struct {
	srv   *httptest.Server
	store *recorder
	rc    *Receiver
}

// recorder is the real buffer, remembering a copy of every line it acknowledged.
type recorder struct {
	Store
	mu    sync.Mutex
	lines [][]byte
}

func (r *recorder) Append(ctx context.Context, line []byte) error {
	err := r.Store.Append(ctx, line)
	if err == nil {
		r.mu.Lock()
		r.lines = append(r.lines, bytes.Clone(line))
		r.mu.Unlock()
	}
	return err
}

// newFixture serves a receiver over a real buffer in a temporary directory; tweak, when not nil, changes its
// options (the store in them is the buffer wrapped by the recorder).
func newFixture(t *testing.T, mode string, tweak func(*Options)) *fixture {
	t.Helper()
	buf, err := buffer.Open(t.TempDir(), buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { buf.Close() })
	rec := &recorder{Store: buf}
	opts := Options{
		Path: "/webhooks/sendpilot", SignatureMode: mode, Verifier: NewVerifier([]string{secret}, 2*time.Hour, nil),
		MaxBodyBytes: 1 << 10, Store: rec,
	}
	if tweak != nil {
		tweak(&opts)
	}
	rc := NewReceiver(opts)
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	t.Cleanup(srv.Client().CloseIdleConnections)
	return &fixture{srv: srv, store: rec, rc: rc}
}

func (f *fixture) post(t *testing.T, body []byte, header string) (int, map[string]any) {
	t.Helper()
	status, out, _ := f.postFull(t, body, header)
	return status, out
}

// postFull posts body with the given signature header (none when empty) and returns the answer's status,
// its JSON body and its headers.
func (f *fixture) postFull(t *testing.T, body []byte, header string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/webhooks/sendpilot", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer do-not-store")
	if header != "" {
		req.Header.Set("Webhook-Signature", header)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header
}

// stored returns the envelopes the buffer acknowledged.
func (f *fixture) stored(t *testing.T) []envelope.Envelope {
	t.Helper()
	f.store.mu.Lock()
	defer f.store.mu.Unlock()
	var out []envelope.Envelope
	for _, line := range f.store.lines {
		e, err := envelope.Decode(line)
		if err != nil {
			t.Fatalf("stored line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// inflight returns the receiver's sendpilot_webhook_inflight_bytes gauge.
func (f *fixture) inflight() int64 { return f.rc.budget.used.Load() }

func signed(body []byte) string {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	return "t=" + ts + ",s=" + Sign(secret, ts, body)
}

const event = `{"eventId":"evt_1","eventType":"message.sent","timestamp":"2024-02-24T10:30:00.000Z","workspaceId":"ws","data":{"leadId":"l1"}}`

func TestWebhookAnswers(t *testing.T) {
	pretty := []byte("{\n  \"eventId\": \"evt_2\",\n  \"eventType\": \"brand.new.event\",\n  \"data\": {}\n}")
	tests := []struct {
		name       string
		mode       string
		body       []byte
		header     func(body []byte) string
		status     int
		outcome    string
		storedSig  string // "" when nothing may be stored
		quarantine string
		eventType  string
	}{
		{"signed event", configs.SignatureEnforce, []byte(event), signed, 200, OutcomeStored, envelope.SigValid, "", "message.sent"},
		{"unknown event type is stored", configs.SignatureEnforce, pretty, signed, 200, OutcomeStored, envelope.SigValid, "", "brand.new.event"},
		{"missing signature, enforce", configs.SignatureEnforce, []byte(event), func([]byte) string { return "" }, 401, OutcomeBadSignature, "", "", ""},
		{"wrong signature, enforce", configs.SignatureEnforce, []byte(event), func([]byte) string { return "t=1,s=00" }, 401, OutcomeBadSignature, "", "", ""},
		{"wrong signature, log", configs.SignatureLog, []byte(event), func([]byte) string { return "t=1,s=00" }, 200, OutcomeStored, envelope.SigInvalid, "", "message.sent"},
		{"no signature, off", configs.SignatureOff, []byte(event), func([]byte) string { return "" }, 200, OutcomeStored, envelope.SigUnchecked, "", "message.sent"},
		{"malformed JSON is kept", configs.SignatureEnforce, []byte(`{"eventId":"evt_3",`), signed, 200, OutcomeQuarantined, envelope.SigValid, "body is not valid JSON", ""},
		{"not an object", configs.SignatureEnforce, []byte(`[1,2]`), signed, 200, OutcomeQuarantined, envelope.SigValid, "not an object", ""},
		{"no eventId", configs.SignatureEnforce, []byte(`{"eventType":"message.sent"}`), signed, 200, OutcomeQuarantined, envelope.SigValid, "no eventId", "message.sent"},
		{"binary body", configs.SignatureEnforce, []byte{0xff, 0xfe, 0x00}, signed, 200, OutcomeQuarantined, envelope.SigValid, "body is not valid JSON", ""},
		{"oversized body", configs.SignatureEnforce, bytes.Repeat([]byte("x"), 2<<10), signed, 413, OutcomeTooLarge, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.mode, nil)
			header := tc.header(tc.body) // once: it depends on the clock
			status, out := f.post(t, tc.body, header)
			if status != tc.status || out["status"] != tc.outcome {
				t.Fatalf("answer = %d %v, want %d %s", status, out, tc.status, tc.outcome)
			}
			got := f.stored(t)
			if tc.storedSig == "" {
				if len(got) != 0 {
					t.Fatalf("stored %d records, want none", len(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("stored %d records, want 1", len(got))
			}
			e := got[0]
			if e.Signature != tc.storedSig || !strings.Contains(e.Quarantine, tc.quarantine) || (tc.quarantine == "") != (e.Quarantine == "") || e.EventType != tc.eventType {
				t.Errorf("envelope = %+v", e)
			}
			if e.Headers["authorization"] != "" || e.Headers["content-type"] != "application/json" || e.Headers["webhook-signature"] != header && tc.mode != configs.SignatureOff {
				t.Errorf("headers = %v", e.Headers)
			}
			if !bytes.Equal(e.Body(), tc.body) {
				var want bytes.Buffer
				if json.Compact(&want, tc.body) != nil || !bytes.Equal(e.Body(), want.Bytes()) {
					t.Errorf("stored body %q, want %q (compacted when JSON)", e.Body(), tc.body)
				}
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	f := newFixture(t, configs.SignatureEnforce, nil)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/webhooks/sendpilot", 405}, {"PUT", "/webhooks/sendpilot", 405}, {"POST", "/other", 404},
		{"GET", "/healthz", 200}, {"GET", "/readyz", 200}, {"GET", "/metrics", 200},
	} {
		req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, nil)
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
	}
	f.post(t, []byte(event), signed([]byte(event)))
	resp, _ := f.srv.Client().Get(f.srv.URL + "/metrics")
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`sendpilot_webhook_requests_total{outcome="stored"} 1`, "sendpilot_webhook_received_bytes_total"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// A chunked body with no Content-Length must be cut off at the limit too.
func TestOversizedChunkedBody(t *testing.T) {
	f := newFixture(t, configs.SignatureOff, nil)
	pr, pw := io.Pipe()
	go func() {
		for range 4 {
			pw.Write(bytes.Repeat([]byte("y"), 512))
		}
		pw.Close()
	}()
	resp, err := f.srv.Client().Post(f.srv.URL+"/webhooks/sendpilot", "application/json", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	if got := f.stored(t); len(got) != 0 {
		t.Fatalf("stored %d records", len(got))
	}
}

// failingStore answers every Append with err.
type failingStore struct{ err error }

func (s failingStore) Append(context.Context, []byte) error { return s.err }
func (s failingStore) Ready() error                         { return s.err }

func TestStoreFailuresAnswer503(t *testing.T) {
	for _, tc := range []struct {
		err     error
		outcome string
	}{
		{fmt.Errorf("%w: quota", buffer.ErrFull), OutcomeBufferFull},
		{buffer.ErrClosed, OutcomeUnavailable},
		{errors.New("write segment: input/output error"), OutcomeUnavailable},
	} {
		f := newFixture(t, configs.SignatureEnforce, func(o *Options) { o.Store = failingStore{tc.err} })
		resp, err := f.srv.Client().Post(f.srv.URL+"/webhooks/sendpilot", "application/json", strings.NewReader(event))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// The request is unsigned: enforce mode must refuse it before the store is even asked.
		if resp.StatusCode != 401 {
			t.Fatalf("unsigned request: %d", resp.StatusCode)
		}
		status, out := f.post(t, []byte(event), signed([]byte(event)))
		if status != 503 || out["status"] != tc.outcome {
			t.Errorf("store error %v: answer %d %v, want 503 %s", tc.err, status, out, tc.outcome)
		}
		r, _ := f.srv.Client().Get(f.srv.URL + "/readyz")
		r.Body.Close()
		if r.StatusCode != 503 {
			t.Errorf("readyz with store error %v = %d", tc.err, r.StatusCode)
		}
	}
}

func TestKeptHeaders(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want []envelope.Header
	}{
		{"none", http.Header{}, nil},
		{"known and unknown names, sorted", http.Header{
			"Webhook-Signature": {"t=1,s=ab"}, "Content-Type": {"application/json"}, "X-Custom-Thing": {"a"}, "Accept": {"*/*"},
		}, []envelope.Header{{Name: "accept", Value: "*/*"}, {Name: "content-type", Value: "application/json"},
			{Name: "webhook-signature", Value: "t=1,s=ab"}, {Name: "x-custom-thing", Value: "a"}}},
		{"credentials dropped, known or not", http.Header{
			"Authorization": {"Bearer x"}, "Cookie": {"c"}, "X-Api-Key": {"k"}, "Proxy-Authorization": {"p"},
			"authorization": {"lower"}, "User-Agent": {"SendPilot/1.0"},
		}, []envelope.Header{{Name: "user-agent", Value: "SendPilot/1.0"}}},
		{"values joined", http.Header{"X-Forwarded-For": {"10.0.0.1", "10.0.0.2"}},
			[]envelope.Header{{Name: "x-forwarded-for", Value: "10.0.0.1, 10.0.0.2"}}},
		{"names equal but for case become one", http.Header{"X-Tag": {"a"}, "x-tag": {"a"}},
			[]envelope.Header{{Name: "x-tag", Value: "a, a"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := keptHeaders(nil, tc.in)
			if len(got) != len(tc.want) || (len(got) > 0 && !slices.Equal(got, tc.want)) {
				t.Errorf("keptHeaders = %v, want %v", got, tc.want)
			}
		})
	}
}

// A pool keeps no buffer that has grown past its cap: the small pool, which envelope heads and answers take
// from, never hands out a body-sized buffer, which no budget counts.
func TestBufPoolKeepsNoBufferPastItsCap(t *testing.T) {
	p := bufPool{max: 8 << 10}
	for range 100 {
		big := p.get(0)
		*big = append(*big, make([]byte, 64<<10)...) // a buffer grown to a body's size
		p.put(big)
		small := p.get(0)
		if cap(*small) > p.max {
			t.Fatalf("the pool handed out a buffer of %d bytes, over its cap of %d", cap(*small), p.max)
		}
		if len(*small) != 0 {
			t.Fatalf("a pooled buffer came back with %d bytes in it", len(*small))
		}
		p.put(small)
	}
	if b := p.get(100 << 10); cap(*b) < 100<<10 {
		t.Fatalf("get(%d) returned %d bytes of capacity", 100<<10, cap(*b))
	}
}
