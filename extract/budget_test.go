package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sendpilot-loader/configs"
	"sendpilot-loader/extract/envelope"
)

// gate holds the first Append until release is closed, closing entered when it starts waiting; later
// Appends pass straight through.
type gate struct {
	Store
	first   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gate) Append(ctx context.Context, line []byte) error {
	if g.first.CompareAndSwap(false, true) {
		close(g.entered)
		<-g.release
	}
	return g.Store.Append(ctx, line)
}

// padded returns a signed-able event of about n bytes.
func padded(id string, n int) []byte {
	head := `{"eventId":"` + id + `","eventType":"message.sent","data":{"pad":"`
	return []byte(head + strings.Repeat("x", n-len(head)-3) + `"}}`)
}

// A delivery that would take the bytes in flight past the budget is answered 503 with Retry-After and not
// stored, while one already in flight holds its share; once that one is done, the same delivery is stored.
// The budget (5 KiB) holds one 2.5 KB delivery with its envelope, not two.
func TestInflightBudget(t *testing.T) {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, configs.SignatureEnforce, func(o *Options) {
		o.MaxBodyBytes, o.MaxInflightBytes = 3<<10, 5<<10
		g.Store = o.Store
		o.Store = g
	})
	var once sync.Once
	releaseFirst := func() { once.Do(func() { close(g.release) }) }
	t.Cleanup(releaseFirst) // before the server's cleanup, which waits for the held request
	first, second := padded("evt_a", 2500), padded("evt_b", 2500)

	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/webhooks/sendpilot", bytes.NewReader(first))
		req.Header.Set(SignatureHeader, signed(first))
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	<-g.entered // the first delivery is read whole and waits in the store, holding its budget
	if held := f.inflight(); held < 2500 || held > 5<<10 {
		t.Fatalf("first delivery holds %d bytes of the budget", held)
	}

	status, out, hdr := f.postFull(t, second, signed(second))
	if status != http.StatusServiceUnavailable || out["status"] != OutcomeBusy || hdr.Get("Retry-After") == "" {
		t.Fatalf("second delivery over the budget: %d %v Retry-After=%q; want 503 busy with Retry-After", status, out, hdr.Get("Retry-After"))
	}
	// A chunked body (no Content-Length) reserves as it grows, and is refused when it would pass the budget.
	pr, pw := io.Pipe()
	go func() {
		pw.Write(second[:1000])
		pw.Write(second[1000:])
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/webhooks/sendpilot", pr)
	req.Header.Set(SignatureHeader, signed(second))
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("chunked delivery over the budget: %d, want 503", resp.StatusCode)
	}

	releaseFirst()
	if code := <-answered; code != http.StatusOK {
		t.Fatalf("first delivery: %d, want 200", code)
	}
	if status, out := f.post(t, second, signed(second)); status != http.StatusOK {
		t.Fatalf("second delivery after the first: %d %v, want 200", status, out)
	}
	var ids []string
	for _, e := range f.stored(t) {
		ids = append(ids, e.EventID)
	}
	if strings.Join(ids, ",") != "evt_a,evt_b" {
		t.Errorf("stored %v, want evt_a then evt_b once each", ids)
	}
	if held := f.inflight(); held != 0 {
		t.Errorf("%d bytes still reserved after every answer", held)
	}
}

// In enforce mode a delivery whose header rules it out is refused before its body is read: with a budget far
// smaller than the body it gets 401, not 503, while a well-signed one of the same size gets 503.
func TestEnforceRefusesBeforeReading(t *testing.T) {
	f := newFixture(t, configs.SignatureEnforce, func(o *Options) { o.MaxBodyBytes, o.MaxInflightBytes = 4<<10, 64 })
	body := padded("evt_big", 3000)
	old := strconv.FormatInt(time.Now().Add(-3*time.Hour).Unix(), 10)
	for name, header := range map[string]string{
		"missing":     "",
		"malformed":   "sha256=deadbeef",
		"non-numeric": "t=notanumber,s=" + Sign(secret, "notanumber", body),
		"stale":       "t=" + old + ",s=" + Sign(secret, old, body),
	} {
		if status, out := f.post(t, body, header); status != http.StatusUnauthorized {
			t.Errorf("%s signature: %d %v, want 401 before the body is read", name, status, out)
		}
	}
	if status, out := f.post(t, body, signed(body)); status != http.StatusServiceUnavailable || out["status"] != OutcomeBusy {
		t.Errorf("good signature over the budget: %d %v, want 503 busy", status, out)
	}
	if got := f.stored(t); len(got) != 0 {
		t.Errorf("stored %d records", len(got))
	}
}

// The replay window: a signature whose t= is outside it (a captured delivery sent again later) is refused in
// enforce mode and recorded as stale in log mode; one inside it, in seconds or milliseconds, is stored.
func TestReplayWindow(t *testing.T) {
	body := []byte(event)
	at := func(d time.Duration, millis bool) string {
		ts := time.Now().Add(d)
		t := strconv.FormatInt(ts.Unix(), 10)
		if millis {
			t = strconv.FormatInt(ts.UnixMilli(), 10)
		}
		return "t=" + t + ",s=" + Sign(secret, t, body)
	}
	tests := []struct {
		name    string
		mode    string
		header  string
		status  int
		verdict string
	}{
		{"retry 1 h 18 min later", configs.SignatureEnforce, at(-78*time.Minute, false), 200, envelope.SigValid},
		{"milliseconds", configs.SignatureEnforce, at(-time.Minute, true), 200, envelope.SigValid},
		{"replayed 3 h later", configs.SignatureEnforce, at(-3*time.Hour, false), 401, ""},
		{"replayed 3 h later, milliseconds", configs.SignatureEnforce, at(-3*time.Hour, true), 401, ""},
		{"from 1970", configs.SignatureEnforce, "t=1,s=" + Sign(secret, "1", body), 401, ""},
		{"non-numeric t", configs.SignatureEnforce, "t=notanumber,s=" + Sign(secret, "notanumber", body), 401, ""},
		{"replayed, log mode", configs.SignatureLog, at(-3*time.Hour, false), 200, envelope.SigStale},
		{"non-numeric t, log mode", configs.SignatureLog, "t=notanumber,s=" + Sign(secret, "notanumber", body), 200, envelope.SigInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.mode, nil)
			status, out := f.post(t, body, tc.header)
			if status != tc.status {
				t.Fatalf("answer %d %v, want %d", status, out, tc.status)
			}
			got := f.stored(t)
			if tc.verdict == "" {
				if len(got) != 0 {
					t.Fatalf("stored %d records, want none", len(got))
				}
				return
			}
			if len(got) != 1 || got[0].Signature != tc.verdict {
				t.Fatalf("stored %+v, want one record with verdict %s", got, tc.verdict)
			}
		})
	}
}

// With no secret configured, a delivery stored in log mode says that nothing could be verified.
func TestNoSecretVerdict(t *testing.T) {
	f := newFixture(t, configs.SignatureLog, func(o *Options) { o.Verifier = NewVerifier(nil, 2*time.Hour, nil) })
	for _, header := range []string{"", signed([]byte(event))} {
		if status, out := f.post(t, []byte(event), header); status != 200 {
			t.Fatalf("answer %d %v", status, out)
		}
	}
	for _, e := range f.stored(t) {
		if e.Signature != envelope.SigNoSecret {
			t.Errorf("verdict %q, want %q", e.Signature, envelope.SigNoSecret)
		}
	}
}

// Bodies whose envelope does not fit the room left in front of them, or that are not JSON, are stored whole.
func TestBodiesOutsideTheFastPath(t *testing.T) {
	f := newFixture(t, configs.SignatureEnforce, func(o *Options) { o.MaxBodyBytes = 64 << 10 })
	longID := strings.Repeat("i", 2*headSlack)
	for _, body := range [][]byte{
		[]byte(`{"eventId":"` + longID + `","eventType":"message.sent","data":{"a": [1, 2]}}`),
		append(bytes.Repeat([]byte("not json \"\x01\n"), 2000), 0xff),
		bytes.Repeat([]byte("plain text\t"), 3000),
		bytes.Repeat([]byte(" "), 40000), // white space only: not JSON
	} {
		if status, out := f.post(t, body, signed(body)); status != 200 {
			t.Fatalf("answer %d %v", status, out)
		}
	}
	got := f.stored(t)
	if len(got) != 4 || got[0].EventID != longID || string(got[0].Payload) != `{"eventId":"`+longID+`","eventType":"message.sent","data":{"a":[1,2]}}` {
		t.Fatalf("stored %d records; first %+v", len(got), got[0])
	}
	for _, e := range got[1:] {
		if e.Quarantine == "" || len(e.Body()) < 20000 {
			t.Errorf("non-JSON body stored as %q (%d bytes)", e.Quarantine, len(e.Body()))
		}
	}
	if held := f.inflight(); held != 0 {
		t.Errorf("%d bytes still reserved", held)
	}
}

// compactValid must write exactly what json.Compact writes, for every valid document.
func FuzzCompactValid(f *testing.F) {
	for _, s := range []string{`{"a": [1, 2, {"b" : "c d\" \\ "}]}`, " \t\n{}\r\n", `"x \u0041 \\\" y"`, `[ ]`, `-1.5e3`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if !json.Valid(doc) {
			return
		}
		var want bytes.Buffer
		if err := json.Compact(&want, doc); err != nil {
			t.Fatal(err)
		}
		if got := compactValid(bytes.Clone(doc)); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("compactValid(%q) = %q, want %q", doc, got, want.Bytes())
		}
	})
}

// headBound must bound the head whatever the headers hold, or every delivery would take the slow path.
func TestHeadBound(t *testing.T) {
	for _, h := range [][]envelope.Header{nil, {{Name: "content-type", Value: "application/json"}}, {{Name: "x-\u0001", Value: strings.Repeat("\"\u0002\\", 300)}}} {
		env := envelope.Envelope{V: envelope.Version, ReceivedAt: time.Date(2026, 12, 1, 10, 25, 5, 382772971, time.UTC),
			Signature: envelope.SigNoSecret, RemoteAddr: "[2001:db8::1]:65535", HeaderList: h}
		if head := envelope.AppendHead(nil, &env); len(head) > headBound(&env) {
			t.Errorf("head of %d bytes over its bound %d: %s", len(head), headBound(&env), head)
		}
	}
}
