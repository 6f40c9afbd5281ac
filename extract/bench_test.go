package extract

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"sendpilot-loader/configs"
)

// discardStore acknowledges every line at once: the benchmark measures the receiver, not the disk.
type discardStore struct{}

func (discardStore) Append(context.Context, []byte) error { return nil }
func (discardStore) Ready() error                         { return nil }

// discardWriter is a ResponseWriter that keeps nothing but its header map, reset for every request.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// benchEvent is an event the size of bench/ingest's (about 500 bytes).
const benchEvent = `{"eventId":"evt_000000000001","eventType":"message.sent","timestamp":"2026-12-01T14:50:03.000Z",` +
	`"workspaceId":"ws_abc123xyz","data":{"leadId":"lead_009e3779b1","campaignId":"camp_0001",` +
	`"linkedinUrl":"https://www.linkedin.com/in/jane-doe-000001/","senderId":"sender_001","message":"Hi Jane, ` +
	`thanks for connecting! I noticed your team at Acme Analytics is growing its data platform group this ` +
	`quarter. We help teams like yours cut pipeline maintenance by half. Would you be open to a short ca",` +
	`"sequenceStep":2}}`

// BenchmarkWebhook measures the receiver's own work for one delivery with signatures off, as under wrk:
// headers, body, envelope and answer, without net/http's parsing or the buffer's fsync.
func BenchmarkWebhook(b *testing.B) {
	rc := NewReceiver(Options{Path: "/webhooks/sendpilot", SignatureMode: configs.SignatureOff, MaxBodyBytes: 1 << 20,
		MaxInflightBytes: 64 << 20, Store: discardStore{}})
	body := []byte(benchEvent)
	rd := bytes.NewReader(body)
	req := httptest.NewRequest(http.MethodPost, "/webhooks/sendpilot", rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Length", "501")
	req.Header.Set("Webhook-Signature", "t=1764600603,s=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	w := &discardWriter{}
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		w.h = http.Header{}
		rc.ServeHTTP(w, req)
	}
}
