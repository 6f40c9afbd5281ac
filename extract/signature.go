package extract

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"sendpilot-loader/extract/envelope"
)

// SignatureHeader is the header SendPilot signs deliveries with: "t=<timestamp>,s=<hex hmac>".
const SignatureHeader = "Webhook-Signature"

// ParsedSignature is a webhook-signature header taken apart.
type ParsedSignature struct {
	// Timestamp is the t= value exactly as sent; it is part of the signed string.
	Timestamp string
	// Signatures are all s= values, in order; during a secret rotation there may be several.
	Signatures []string
}

// ParseSignatureHeader splits a header into its parts by prefix, in any order, ignoring parts it does not
// know and spaces around commas. It needs exactly one t=, a positive decimal integer, and at least one s=.
func ParseSignatureHeader(h string) (ParsedSignature, error) {
	var p ParsedSignature
	seenT := false
	for part := range strings.SplitSeq(h, ",") {
		part = strings.TrimSpace(part)
		switch {
		case strings.HasPrefix(part, "t="):
			if seenT {
				return ParsedSignature{}, errors.New("parse signature header: more than one t=")
			}
			seenT = true
			p.Timestamp = part[2:]
		case strings.HasPrefix(part, "s="):
			if s := part[2:]; s != "" {
				p.Signatures = append(p.Signatures, s)
			}
		}
	}
	if p.Timestamp == "" {
		return ParsedSignature{}, errors.New("parse signature header: no t=")
	}
	if _, ok := p.Time(); !ok {
		return ParsedSignature{}, fmt.Errorf("parse signature header: t=%q is not a positive Unix time", p.Timestamp)
	}
	if len(p.Signatures) == 0 {
		return ParsedSignature{}, errors.New("parse signature header: no s=")
	}
	return p, nil
}

// Time interprets t= as Unix seconds, or as Unix milliseconds when it is too large to be seconds (the docs do
// not say which SendPilot sends). It reports false for anything but a positive decimal integer.
func (p ParsedSignature) Time() (time.Time, bool) {
	if p.Timestamp == "" || p.Timestamp[0] < '0' || p.Timestamp[0] > '9' { // ParseInt would take a sign
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(p.Timestamp, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	if n >= 1e11 { // 1e11 seconds is the year 5138; 1e11 ms is 1973
		return time.UnixMilli(n), true
	}
	return time.Unix(n, 0), true
}

// Verifier checks signatures against every configured secret. It is safe for concurrent use.
type Verifier struct {
	macs      []*sync.Pool // one pool of keyed HMAC-SHA256 states per secret: keying costs two hashes
	tolerance time.Duration
	now       func() time.Time
}

// NewVerifier returns a Verifier for the given secrets. A positive tolerance makes a signature whose t= is
// further than that from now "stale"; zero turns the check off.
func NewVerifier(secrets []string, tolerance time.Duration, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	v := &Verifier{tolerance: tolerance, now: now}
	for _, s := range secrets {
		key := []byte(s)
		v.macs = append(v.macs, &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }})
	}
	return v
}

// Sign returns the hex HMAC-SHA256 of "<t>.<body>" keyed by secret: the s= value SendPilot would send.
func Sign(secret, t string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(t))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// NewSignedRequest builds a POST of a JSON body to url, signed with secret at the current time as SendPilot
// signs its deliveries: for clients that stand in for SendPilot, such as tests and benchmarks.
func NewSignedRequest(ctx context.Context, url, secret string, body []byte) (*http.Request, error) {
	t := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, "t="+t+",s="+Sign(secret, t, body))
	return req, nil
}

// Verify returns the verdict for a header value and a whole body; see Begin.
func (v *Verifier) Verify(header string, body []byte) string {
	c := v.Begin(header)
	c.Write(body)
	return c.Verdict()
}

// Check is the signature check of one delivery, fed the body as it arrives so that the body is never needed
// whole. Its zero value is not usable; get one from Begin and end it with Verdict.
type Check struct {
	v       *Verifier
	verdict string // decided from the header alone, or "" while the body decides
	stale   bool   // t= is outside the tolerance: the verdict is stale at best
	macs    []hash.Hash
	sigs    [][sha256.Size]byte // the s= values that are well-formed hex digests
}

// Begin starts checking a delivery with the given header value. It decides from the header alone when it
// can: no_secret when no secret is configured, missing without a header, invalid when the header cannot be
// parsed (including a t= that is not a positive integer) or carries no well-formed s=. Otherwise the body,
// written to the Check, decides: valid when some secret produced some s= (compared in constant time), stale
// when one did but t= is outside the tolerance, invalid when none did.
func (v *Verifier) Begin(header string) *Check {
	c := &Check{v: v}
	if len(v.macs) == 0 {
		c.verdict = envelope.SigNoSecret
		return c
	}
	if strings.TrimSpace(header) == "" {
		c.verdict = envelope.SigMissing
		return c
	}
	p, err := ParseSignatureHeader(header)
	if err != nil {
		c.verdict = envelope.SigInvalid
		return c
	}
	for _, s := range p.Signatures {
		var d [sha256.Size]byte
		if len(s) == 2*sha256.Size {
			if _, err := hex.Decode(d[:], []byte(s)); err == nil {
				c.sigs = append(c.sigs, d)
			}
		}
	}
	if len(c.sigs) == 0 {
		c.verdict = envelope.SigInvalid
		return c
	}
	if v.tolerance > 0 {
		t, _ := p.Time() // parsed above
		if d := v.now().Sub(t); d > v.tolerance || d < -v.tolerance {
			c.stale = true
		}
	}
	c.macs = make([]hash.Hash, len(v.macs))
	for i, pool := range v.macs {
		mac := pool.Get().(hash.Hash)
		mac.Reset()
		mac.Write([]byte(p.Timestamp))
		mac.Write([]byte{'.'})
		c.macs[i] = mac
	}
	return c
}

// Rejected reports, before any of the body has been read, whether the delivery can no longer be valid, and
// the verdict to give it then: the header is missing or malformed, no secret is configured, or t= is stale.
func (c *Check) Rejected() (string, bool) {
	switch {
	case c.verdict != "":
		return c.verdict, true
	case c.stale:
		return envelope.SigStale, true
	}
	return "", false
}

// Write feeds the next bytes of the body to the check. It never fails.
func (c *Check) Write(p []byte) (int, error) {
	for _, mac := range c.macs {
		mac.Write(p)
	}
	return len(p), nil
}

// Verdict returns the verdict for the body written so far and releases the check; call it once.
func (c *Check) Verdict() string {
	if c.verdict != "" {
		return c.verdict
	}
	matched := false
	var sum [sha256.Size]byte
	for i, mac := range c.macs {
		mac.Sum(sum[:0])
		for _, s := range c.sigs {
			if hmac.Equal(sum[:], s[:]) {
				matched = true
			}
		}
		c.v.macs[i].Put(mac)
	}
	c.macs = nil
	switch {
	case !matched:
		c.verdict = envelope.SigInvalid
	case c.stale:
		c.verdict = envelope.SigStale
	default:
		c.verdict = envelope.SigValid
	}
	return c.verdict
}
