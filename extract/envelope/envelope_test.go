package envelope

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func sample() Envelope {
	return Envelope{
		V:          Version,
		ReceivedAt: time.Date(2026, 11, 23, 1, 2, 3, 456789000, time.UTC),
		Signature:  SigValid,
		RemoteAddr: "127.0.0.1:5555",
		Headers:    map[string]string{"content-type": "application/json", "user-agent": "SendPilot/1.0"},
		EventID:    "evt_1708456789123_abc123def",
		EventType:  "message.sent",
		Payload:    json.RawMessage(`{"eventId":"evt_1708456789123_abc123def","eventType":"message.sent","data":{"message":"Hi \"John\"\n"}}`),
	}
}

func TestAppendLineRoundTrip(t *testing.T) {
	for name, e := range map[string]Envelope{
		"json payload":   sample(),
		"text payload":   {V: 1, ReceivedAt: time.Unix(1, 0).UTC(), Signature: SigMissing, Quarantine: "body is not valid JSON", PayloadText: "{\"eventId\": oops\n\u2028é"},
		"binary payload": {V: 1, ReceivedAt: time.Unix(2, 0).UTC(), Signature: SigUnchecked, Quarantine: "body is not valid JSON", PayloadBase64: []byte{0xff, 0x00, 0x0a, 'x'}},
	} {
		t.Run(name, func(t *testing.T) {
			line := AppendLine(nil, &e)
			if bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("line has a newline: %s", line)
			}
			if !IsEnvelope(line) {
				t.Fatalf("IsEnvelope false for %s", line)
			}
			got, err := Decode(line)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, e)
			}
			if !bytes.Equal(got.Body(), e.Body()) {
				t.Errorf("Body = %q, want %q", got.Body(), e.Body())
			}
			at, ok := ReceivedAt(line[:80])
			if !ok || !at.Equal(e.ReceivedAt) {
				t.Errorf("ReceivedAt from head = %v, %v; want %v", at, ok, e.ReceivedAt)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, line := range []string{`{"v":0,"received_at":"2026-01-01T00:00:00Z"}`, `{"v":2,"received_at":"2026-01-01T00:00:00Z"}`, `{"v":1}`, `{"eventId":"x"}`, `not json`} {
		if _, err := Decode([]byte(line)); err == nil {
			t.Errorf("Decode(%s) accepted", line)
		}
	}
	if IsEnvelope([]byte(`{"eventId":"evt"}`)) {
		t.Error("a bare event looks like an envelope")
	}
}

// AppendString must produce what encoding/json reads back as the same string.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" backslash\\ nl\n tab\t cr\r", "\x00\x1f\x7f", "é€😀", "\xff\xfe", "\u2028\u2029"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("AppendString(%q) = %s: not JSON: %v", s, out, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("AppendString(%q) read back as %q", s, back)
		}
	})
}

// Any envelope the writer can produce must read back equal (the writer/reader round trip).
func FuzzEnvelopeRoundTrip(f *testing.F) {
	f.Add("evt_1", "message.sent", "content-type", "application/json", "", []byte(`{"a":1}`), int64(1))
	f.Add("", "", "x", "\n", "not json", []byte("{"), int64(1e18))
	f.Fuzz(func(t *testing.T, id, typ, hk, hv, quarantine string, body []byte, nanos int64) {
		for _, s := range []string{id, typ, hk, hv, quarantine} {
			if !utf8.ValidString(s) {
				return // invalid UTF-8 in these strings becomes U+FFFD by design; only the payload must be lossless
			}
		}
		e := Envelope{V: Version, ReceivedAt: time.Unix(0, nanos).UTC(), Signature: SigInvalid, EventID: id, EventType: typ, Quarantine: quarantine}
		if hk != "" {
			e.Headers = map[string]string{hk: hv}
		}
		var compact bytes.Buffer
		switch {
		case json.Compact(&compact, body) == nil && compact.Len() > 0:
			e.Payload = compact.Bytes()
		case utf8.Valid(body) && len(body) > 0:
			e.PayloadText = string(body)
		case len(body) > 0:
			e.PayloadBase64 = body
		}
		line := AppendLine(nil, &e)
		if bytes.IndexByte(line, '\n') >= 0 {
			t.Fatalf("newline in %q", line)
		}
		got, err := Decode(line)
		if err != nil {
			t.Fatalf("Decode(%s): %v", line, err)
		}
		if got.EventID != e.EventID || got.EventType != e.EventType || got.Quarantine != e.Quarantine ||
			!got.ReceivedAt.Equal(e.ReceivedAt) || !reflect.DeepEqual(got.Headers, e.Headers) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
		}
		if len(e.Payload) > 0 {
			var a, b any
			json.Unmarshal(e.Payload, &a)
			json.Unmarshal(got.Payload, &b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("payload changed: %s -> %s", e.Payload, got.Payload)
			}
		} else if !bytes.Equal(got.Body(), e.Body()) {
			t.Fatalf("body changed: %q -> %q", e.Body(), got.Body())
		}
	})
}

// The key constants are what an Envelope marshals to, so readers that scan lines by key and writers agree.
func TestKeys(t *testing.T) {
	e := Envelope{V: 1, ReceivedAt: time.Unix(1, 0), Signature: SigValid, EventID: "e", EventType: "t", Quarantine: "q",
		Payload: []byte(`{}`), PayloadText: "x", PayloadBase64: []byte{1}}
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	for _, k := range []string{KeyVersion, KeyReceivedAt, KeySignature, KeyEventID, KeyEventType, KeyQuarantine, KeyPayload, KeyPayloadText, KeyPayloadBase64} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q is not a field of Envelope", k)
		}
	}
	line := AppendLine(nil, &Envelope{V: 1, ReceivedAt: time.Unix(1, 0), Signature: SigValid, EventID: "e", Payload: []byte(`{}`)})
	for _, k := range []string{KeyVersion, KeyReceivedAt, KeySignature, KeyEventID, KeyPayload} {
		if !strings.Contains(string(line), `"`+k+`":`) {
			t.Errorf("AppendLine does not write key %q: %s", k, line)
		}
	}
}

// QuotedGrowth counts exactly what AppendString adds to valid UTF-8 text: callers reserve memory by it.
func TestQuotedGrowthMatchesAppendString(t *testing.T) {
	texts := []string{"", "plain", "é€😀", "a\"b\\c\nd\re\tf", "\x00\x01\x1f\x7f"}
	for c := range 0x80 {
		texts = append(texts, string(rune(c)))
	}
	for _, s := range texts {
		if got, want := QuotedGrowth([]byte(s)), len(AppendString(nil, s))-len(s); got != want {
			t.Errorf("QuotedGrowth(%q) = %d, AppendString adds %d", s, got, want)
		}
	}
}

// A writer that hands its headers over as a sorted list writes the line that the same headers in the map
// give; readers get them back in the map.
func TestHeaderListWritesAsHeaders(t *testing.T) {
	want := sample()
	listed := want
	listed.Headers = nil
	listed.HeaderList = []Header{{Name: "content-type", Value: "application/json"}, {Name: "user-agent", Value: "SendPilot/1.0"}}
	line := AppendLine(nil, &listed)
	if golden := AppendLine(nil, &want); !bytes.Equal(line, golden) {
		t.Fatalf("line from HeaderList:\n%s\nfrom Headers:\n%s", line, golden)
	}
	got, err := Decode(line)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Headers, want.Headers) || got.HeaderList != nil {
		t.Errorf("decoded headers %v, list %v; want %v and no list", got.Headers, got.HeaderList, want.Headers)
	}
}

// AppendString skips plain ASCII eight bytes at a time: a byte that needs escaping, or starts a multi-byte
// character, must be caught at every offset within a word.
func TestAppendStringWords(t *testing.T) {
	for off := range 17 {
		pad := strings.Repeat("a", off)
		for x, esc := range map[string]string{`"`: `\"`, `\`: `\\`, "\n": `\n`, "\t": `\t`, "\x00": `\u0000`, "\x1f": `\u001f`,
			" ": " ", "\x7f": "\x7f", "é": "é", "\xff": `\ufffd`, "!": "!", "#": "#", "]": "]"} {
			s := pad + x + strings.Repeat("b", 20)
			if got, want := string(AppendString(nil, s)), `"`+pad+esc+strings.Repeat("b", 20)+`"`; got != want {
				t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
			}
		}
	}
}
