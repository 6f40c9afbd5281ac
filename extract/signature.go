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
// know and spaces around commas. It needs exactly one t= and at least one s=.
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
	if len(p.Signatures) == 0 {
		return ParsedSignature{}, errors.New("parse signature header: no s=")
	}
	return p, nil
}

// Time interprets t= as Unix seconds, or as Unix milliseconds when it is too large to be seconds (the docs do
// not say which SendPilot sends).
func (p ParsedSignature) Time() (time.Time, bool) {
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
// further than that from now "stale".
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

// Verify returns the verdict for a header value and the raw body: valid when some secret produced some s=
// (compared in constant time), stale when it did but t= is outside the tolerance, missing when there is no
// header, invalid otherwise.
func (v *Verifier) Verify(header string, body []byte) string {
	if strings.TrimSpace(header) == "" {
		return envelope.SigMissing
	}
	p, err := ParseSignatureHeader(header)
	if err != nil {
		return envelope.SigInvalid
	}
	matched := false
	var want [sha256.Size * 2]byte
	var sum [sha256.Size]byte
	for _, pool := range v.macs {
		mac := pool.Get().(hash.Hash)
		mac.Reset()
		mac.Write([]byte(p.Timestamp))
		mac.Write([]byte{'.'})
		mac.Write(body)
		hex.Encode(want[:], mac.Sum(sum[:0]))
		pool.Put(mac)
		for _, s := range p.Signatures {
			if hmac.Equal(want[:], []byte(strings.ToLower(s))) {
				matched = true
			}
		}
	}
	if !matched {
		return envelope.SigInvalid
	}
	if v.tolerance > 0 {
		t, ok := p.Time()
		if !ok {
			return envelope.SigStale
		}
		if d := v.now().Sub(t); d > v.tolerance || d < -v.tolerance {
			return envelope.SigStale
		}
	}
	return envelope.SigValid
}
