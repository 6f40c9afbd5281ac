package extract

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sendpilot-loader/extract/envelope"
)

func TestParseSignatureHeader(t *testing.T) {
	tests := []struct {
		name   string
		header string
		t      string
		sigs   []string
		ok     bool
	}{
		{"documented order", "t=1708770600,s=abc", "1708770600", []string{"abc"}, true},
		{"reversed order", "s=abc,t=1708770600", "1708770600", []string{"abc"}, true},
		{"spaces", " t=1 , s=abc ", "1", []string{"abc"}, true},
		{"several s", "t=1,s=aa,s=bb", "1", []string{"aa", "bb"}, true},
		{"unknown parts ignored", "v=2,t=1,x=y,s=aa", "1", []string{"aa"}, true},
		{"empty s skipped", "t=1,s=,s=aa", "1", []string{"aa"}, true},
		{"no t", "s=aa", "", nil, false},
		{"no s", "t=1", "", nil, false},
		{"two t", "t=1,t=2,s=aa", "", nil, false},
		{"empty", "", "", nil, false},
		{"garbage", "sha256=deadbeef", "", nil, false},
		{"non-numeric t", "t=notanumber,s=aa", "", nil, false},
		{"zero t", "t=0,s=aa", "", nil, false},
		{"negative t", "t=-1708770600,s=aa", "", nil, false},
		{"t overflowing int64", "t=99999999999999999999,s=aa", "", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseSignatureHeader(tc.header)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if p.Timestamp != tc.t || !slices.Equal(p.Signatures, tc.sigs) {
				t.Errorf("got t=%q s=%v, want t=%q s=%v", p.Timestamp, p.Signatures, tc.t, tc.sigs)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"eventId":"evt_1","eventType":"message.sent"}`)
	now := time.Unix(1708770600, 0)
	ts := "1708770600"
	tsMillis := "1708770600123"
	good := Sign("new-secret", ts, body)
	old := Sign("old-secret", ts, body)
	tests := []struct {
		name      string
		secrets   []string
		tolerance time.Duration
		header    string
		body      []byte
		want      string
	}{
		{"good", []string{"new-secret"}, 0, "t=" + ts + ",s=" + good, body, envelope.SigValid},
		{"upper-case hex", []string{"new-secret"}, 0, "t=" + ts + ",s=" + strings.ToUpper(good), body, envelope.SigValid},
		{"rotated: old secret still configured", []string{"new-secret", "old-secret"}, 0, "t=" + ts + ",s=" + old, body, envelope.SigValid},
		{"rotated: two s values, one good", []string{"new-secret"}, 0, "t=" + ts + ",s=" + old + ",s=" + good, body, envelope.SigValid},
		{"wrong secret", []string{"other"}, 0, "t=" + ts + ",s=" + good, body, envelope.SigInvalid},
		{"body changed", []string{"new-secret"}, 0, "t=" + ts + ",s=" + good, append(body, ' '), envelope.SigInvalid},
		{"timestamp changed", []string{"new-secret"}, 0, "t=1708770601,s=" + good, body, envelope.SigInvalid},
		{"truncated signature", []string{"new-secret"}, 0, "t=" + ts + ",s=" + good[:20], body, envelope.SigInvalid},
		{"missing header", []string{"new-secret"}, 0, "", body, envelope.SigMissing},
		{"malformed header", []string{"new-secret"}, 0, "nonsense", body, envelope.SigInvalid},
		{"no secrets", nil, 0, "t=" + ts + ",s=" + good, body, envelope.SigNoSecret},
		{"no secrets, no header", nil, 0, "", body, envelope.SigNoSecret},
		{"within tolerance (seconds)", []string{"new-secret"}, time.Minute, "t=" + ts + ",s=" + good, body, envelope.SigValid},
		{"within tolerance (milliseconds)", []string{"new-secret"}, time.Minute, "t=" + tsMillis + ",s=" + Sign("new-secret", tsMillis, body), body, envelope.SigValid},
		{"stale", []string{"new-secret"}, time.Minute, "t=1708770000,s=" + Sign("new-secret", "1708770000", body), body, envelope.SigStale},
		{"from the future", []string{"new-secret"}, time.Minute, "t=1708771600,s=" + Sign("new-secret", "1708771600", body), body, envelope.SigStale},
		{"unparsable t with tolerance", []string{"new-secret"}, time.Minute, "t=soon,s=" + Sign("new-secret", "soon", body), body, envelope.SigInvalid},
		{"unparsable t without tolerance", []string{"new-secret"}, 0, "t=soon,s=" + Sign("new-secret", "soon", body), body, envelope.SigInvalid},
		{"zero t", []string{"new-secret"}, 0, "t=0,s=" + Sign("new-secret", "0", body), body, envelope.SigInvalid},
		{"negative t", []string{"new-secret"}, 0, "t=-5,s=" + Sign("new-secret", "-5", body), body, envelope.SigInvalid},
		{"signed t", []string{"new-secret"}, 0, "t=+1708770600,s=" + Sign("new-secret", "+1708770600", body), body, envelope.SigInvalid},
		{"t from 1970, default window", []string{"new-secret"}, 2 * time.Hour, "t=1,s=" + Sign("new-secret", "1", body), body, envelope.SigStale},
		{"retry 1 h 59 min later, default window", []string{"new-secret"}, 2 * time.Hour, "t=1708763460,s=" + Sign("new-secret", "1708763460", body), body, envelope.SigValid},
		{"replay 2 h 1 min later, default window", []string{"new-secret"}, 2 * time.Hour, "t=1708763340,s=" + Sign("new-secret", "1708763340", body), body, envelope.SigStale},
		{"replay 2 h 1 min later, milliseconds", []string{"new-secret"}, 2 * time.Hour, "t=1708763340000,s=" + Sign("new-secret", "1708763340000", body), body, envelope.SigStale},
		{"stale and wrong", []string{"new-secret"}, time.Minute, "t=1,s=" + good, body, envelope.SigInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := NewVerifier(tc.secrets, tc.tolerance, func() time.Time { return now })
			if got := v.Verify(tc.header, tc.body); got != tc.want {
				t.Errorf("Verify = %s, want %s", got, tc.want)
			}
		})
	}
}

// A header that rules the delivery out is known to do so before any of the body is read, and a header that
// may be good is not.
func TestRejectedBeforeBody(t *testing.T) {
	now := time.Unix(1708770600, 0)
	sig := strings.Repeat("ab", 32)
	tests := []struct {
		name     string
		secrets  []string
		header   string
		verdict  string
		rejected bool
	}{
		{"no header", []string{"k"}, "", envelope.SigMissing, true},
		{"no secret configured", nil, "t=1708770600,s=" + sig, envelope.SigNoSecret, true},
		{"unparsable", []string{"k"}, "sha256=" + sig, envelope.SigInvalid, true},
		{"non-numeric t", []string{"k"}, "t=notanumber,s=" + sig, envelope.SigInvalid, true},
		{"s not a digest", []string{"k"}, "t=1708770600,s=00", envelope.SigInvalid, true},
		{"t outside the window", []string{"k"}, "t=1,s=" + sig, envelope.SigStale, true},
		{"fresh, well-formed", []string{"k"}, "t=1708770600,s=" + sig, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewVerifier(tc.secrets, 2*time.Hour, func() time.Time { return now }).Begin(tc.header)
			verdict, rejected := c.Rejected()
			if verdict != tc.verdict || rejected != tc.rejected {
				t.Errorf("Rejected = %q, %v; want %q, %v", verdict, rejected, tc.verdict, tc.rejected)
			}
		})
	}
}

// Feeding the body in pieces gives the same verdict as feeding it whole.
func TestCheckStreams(t *testing.T) {
	body := bytes.Repeat([]byte(`{"eventId":"evt_1"}`), 1000)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	c := NewVerifier([]string{"old", "new"}, time.Hour, nil).Begin("t=" + ts + ",s=" + Sign("new", ts, body))
	for i := 0; i < len(body); i += 777 {
		c.Write(body[i:min(i+777, len(body))])
	}
	if got := c.Verdict(); got != envelope.SigValid {
		t.Errorf("streamed verdict = %s, want valid", got)
	}
}

// The documented example from the SendPilot setup page, computed independently with openssl:
// printf '1708770600.{"eventId":"evt_1"}' | openssl dgst -sha256 -hmac whsec_test
func TestSignKnownVector(t *testing.T) {
	got := Sign("whsec_test", "1708770600", []byte(`{"eventId":"evt_1"}`))
	const want = "726d32d3412e5b56af0c23e0578df87569e28bc0010c6f4260a2290c89414d6c"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func FuzzParseSignatureHeader(f *testing.F) {
	for _, s := range []string{"t=1,s=aa", "s=aa,t=1", "t=1,s=aa,s=bb", "", ",,,", "t=,s=", "t=1,t=2,s=a", "\x00t=1"} {
		f.Add(s)
	}
	v := NewVerifier([]string{"k"}, time.Minute, nil)
	f.Fuzz(func(t *testing.T, h string) {
		p, err := ParseSignatureHeader(h)
		if err == nil {
			if p.Timestamp == "" || len(p.Signatures) == 0 {
				t.Fatalf("accepted %q without t or s: %+v", h, p)
			}
			for _, s := range p.Signatures {
				if !strings.Contains(h, "s="+s) {
					t.Fatalf("signature %q not in header %q", s, h)
				}
			}
		}
		switch got := v.Verify(h, []byte("{}")); got {
		case envelope.SigValid, envelope.SigInvalid, envelope.SigMissing, envelope.SigStale:
		default: // never no_secret or unchecked: there is a secret and checking is on
			t.Fatalf("Verify(%q) = %q", h, got)
		}
	})
}

// A request built by NewSignedRequest passes verification with its secret and fails with another.
func TestNewSignedRequestVerifies(t *testing.T) {
	body := []byte(`{"eventId":"evt_1","eventType":"message.sent","data":{}}`)
	req, err := NewSignedRequest(context.Background(), "http://127.0.0.1/webhooks/sendpilot", "whsec_a", body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(req.Body)
	if req.Method != http.MethodPost || !bytes.Equal(got, body) || req.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("request: %s %q %v", req.Method, got, req.Header)
	}
	for secret, want := range map[string]string{"whsec_a": envelope.SigValid, "whsec_b": envelope.SigInvalid} {
		if v := NewVerifier([]string{secret}, time.Minute, nil).Verify(req.Header.Get(SignatureHeader), body); v != want {
			t.Errorf("verified with %s: %s, want %s", secret, v, want)
		}
	}
}
