// Package envelope defines the one-line JSON record the receiver writes to the buffer for each delivery, and
// reads it back. It has no dependencies beyond the standard library, so the transform can share it.
//
// A line is a JSON object whose keys always come in this order: v, received_at, signature, then the optional
// keys, and last the payload. Exactly one of payload (the body as compact JSON), payload_text (a body that is
// not JSON but is UTF-8) and payload_base64 (any other body) is present. quarantine is set, with a reason, when
// the body is not a SendPilot event that the transform can key (not JSON, not an object, no eventId).
package envelope

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the envelope format written by this build. Readers accept every version up to it.
const Version = 1

// The keys of an envelope line, for readers that look at a line without decoding it into an Envelope (the
// transform). TestKeys checks them against the struct tags below.
const (
	KeyVersion       = "v"
	KeyReceivedAt    = "received_at"
	KeySignature     = "signature"
	KeyEventID       = "event_id"
	KeyEventType     = "event_type"
	KeyQuarantine    = "quarantine"
	KeyPayload       = "payload"
	KeyPayloadText   = "payload_text"
	KeyPayloadBase64 = "payload_base64"
)

// Signature verdicts recorded in the envelope.
const (
	SigValid     = "valid"     // a configured secret produced one of the s= values
	SigInvalid   = "invalid"   // a header was present but no secret matched it, or it could not be parsed
	SigMissing   = "missing"   // no webhook-signature header
	SigStale     = "stale"     // the signature matched but t= is outside the configured tolerance
	SigUnchecked = "unchecked" // signature checking is off
	SigNoSecret  = "no_secret" // checking is on but no secret is configured, so nothing could be verified
)

// Envelope is one buffered delivery.
type Envelope struct {
	V          int               `json:"v"`
	ReceivedAt time.Time         `json:"received_at"`
	Signature  string            `json:"signature"`
	RemoteAddr string            `json:"remote_addr,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	// HeaderList, when not empty, is written in place of Headers: the same headers as pairs sorted by name,
	// no name twice, for a writer that has them in order already (the receiver). Decode fills Headers only.
	HeaderList []Header `json:"-"`
	EventID    string   `json:"event_id,omitempty"`
	EventType  string   `json:"event_type,omitempty"`
	Quarantine string   `json:"quarantine,omitempty"`
	// Exactly one of the following three is set.
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadText   string          `json:"payload_text,omitempty"`
	PayloadBase64 []byte          `json:"payload_base64,omitempty"`
}

// Header is one recorded request header: its lower-case name and its values joined by ", ".
type Header struct{ Name, Value string }

// Body returns the delivery's body: the compact JSON payload, or the original bytes of a body that was not JSON.
func (e *Envelope) Body() []byte {
	switch {
	case len(e.Payload) > 0:
		return e.Payload
	case e.PayloadText != "":
		return []byte(e.PayloadText)
	}
	return e.PayloadBase64
}

// AppendLine appends e as one JSON line without the trailing newline. The payload must already be valid,
// compact JSON (it is copied as is).
func AppendLine(dst []byte, e *Envelope) []byte {
	if len(e.Payload) > 0 {
		dst = AppendHead(dst, e)
		dst = append(dst, e.Payload...)
		return append(dst, '}')
	}
	dst = appendKeys(dst, e)
	switch {
	case e.PayloadText != "":
		dst = appendField(dst, KeyPayloadText, e.PayloadText)
	case len(e.PayloadBase64) > 0:
		b, _ := json.Marshal(e.PayloadBase64) // a []byte marshals as a base64 string
		dst = append(dst, `,"`+KeyPayloadBase64+`":`...)
		dst = append(dst, b...)
	}
	return append(dst, '}')
}

// AppendHead appends what AppendLine writes before a JSON payload, up to and including `"payload":`, ignoring
// e.Payload itself. The payload's compact JSON and a closing '}' complete the line: a writer that holds the
// payload already can put the head in front of it without copying the payload.
func AppendHead(dst []byte, e *Envelope) []byte {
	return append(appendKeys(dst, e), `,"`+KeyPayload+`":`...)
}

// appendKeys appends the opening brace and every key before the payload.
func appendKeys(dst []byte, e *Envelope) []byte {
	dst = append(dst, `{"`+KeyVersion+`":`...)
	dst = strconv.AppendInt(dst, int64(e.V), 10)
	dst = append(dst, `,"`+KeyReceivedAt+`":"`...)
	dst = e.ReceivedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","`+KeySignature+`":`...)
	dst = AppendString(dst, e.Signature)
	dst = appendField(dst, "remote_addr", e.RemoteAddr)
	switch {
	case len(e.HeaderList) > 0:
		dst = appendHeaders(dst, e.HeaderList)
	case len(e.Headers) > 0:
		list := make([]Header, 0, len(e.Headers))
		for k, v := range e.Headers {
			list = append(list, Header{k, v})
		}
		slices.SortFunc(list, func(a, b Header) int { return strings.Compare(a.Name, b.Name) })
		dst = appendHeaders(dst, list)
	}
	dst = appendField(dst, KeyEventID, e.EventID)
	dst = appendField(dst, KeyEventType, e.EventType)
	return appendField(dst, KeyQuarantine, e.Quarantine)
}

// appendHeaders appends the headers key with list, which is sorted by name.
func appendHeaders(dst []byte, list []Header) []byte {
	dst = append(dst, `,"headers":{`...)
	for i, h := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, h.Name)
		dst = append(dst, ':')
		dst = AppendString(dst, h.Value)
	}
	return append(dst, '}')
}

func appendField(dst []byte, key, val string) []byte {
	if val == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return AppendString(dst, val)
}

const hexDigits = "0123456789abcdef"

// MaxQuotedBytes is the most bytes AppendString writes for one byte of its string (a control character
// becomes \u00XX).
const MaxQuotedBytes = 6

// QuotedGrowth is how many bytes AppendString adds to valid UTF-8 text beyond its length: the quotes and the
// escapes. It must count every escape AppendString writes, since callers reserve memory by it.
func QuotedGrowth(text []byte) int {
	n := 2
	for _, c := range text {
		switch {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
			n++
		case c < 0x20:
			n += MaxQuotedBytes - 1
		}
	}
	return n
}

// Word-at-a-time tests, eight bytes at once, for the bytes a JSON string cannot hold as they are.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// PlainWord reports whether none of the eight bytes of w is a quote, a backslash or a control character: the
// bytes that a JSON string holds only escaped. It never flags a word without such a byte, and always one
// with: (v - ones) &^ v & highs is non-zero exactly when some byte of v is zero, and
// (w - 0x20*ones) &^ w & highs exactly when some byte of w is below 0x20.
func PlainWord(w uint64) bool {
	quote, backslash := w^('"'*ones), w^('\\'*ones)
	return ((quote-ones)&^quote|(backslash-ones)&^backslash|(w-0x20*ones)&^w)&highs == 0
}

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD; callers that must not lose bytes
// check utf8.Valid first (the receiver base64-encodes such bodies instead).
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Skip plain ASCII eight bytes at a time.
		for i+8 <= len(s) {
			w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
			if w&highs != 0 || !PlainWord(w) {
				break
			}
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Decode parses one envelope line (with or without its newline).
func Decode(line []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(line, &e); err != nil {
		return e, fmt.Errorf("decode envelope: %w", err)
	}
	if e.V < 1 || e.V > Version {
		return e, fmt.Errorf("decode envelope: unsupported version %d", e.V)
	}
	if e.ReceivedAt.IsZero() {
		return e, fmt.Errorf("decode envelope: no received_at")
	}
	return e, nil
}

var headPrefix = []byte(`{"` + KeyVersion + `":`)

// IsEnvelope reports whether line starts the way every envelope does. It does not validate the rest.
func IsEnvelope(line []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(line, " \t\r\n"), headPrefix)
}

// ReceivedAt reads the receive time from the first bytes of an envelope line, without parsing the rest.
func ReceivedAt(head []byte) (time.Time, bool) {
	const key = `"` + KeyReceivedAt + `":"`
	i := bytes.Index(head, []byte(key))
	if i < 0 || !bytes.HasPrefix(head, headPrefix) {
		return time.Time{}, false
	}
	rest := head[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t, err == nil
}
