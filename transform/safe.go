package transform

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fastjson"

	"sendpilot-loader/extract/envelope"
)

// Warehouse-safe values. Every value the transform writes is one that both DuckDB and BigQuery store; a value
// sent outside that domain is repaired, the repair is listed in the event's repairs column, and the original
// bytes stay in the buffer segment the event came from (events.source_file, events.source_line), which the
// loader archives. See docs/bad-values.md for what happens to each kind of value.
//
// The domains are BigQuery's, the narrower of the two:
//   - STRING is UTF-8 (https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#string_type):
//     invalid bytes and unpaired UTF-16 surrogate escapes become U+FFFD.
//   - JSON is what PARSE_JSON(…, wide_number_mode => 'round') accepts
//     (https://cloud.google.com/bigquery/docs/reference/standard-sql/json_functions#parse_json): RFC 8259 text
//     whose numbers round to a finite FLOAT64, nested at most 500 deep
//     (https://cloud.google.com/bigquery/docs/json-data#limitations). A number outside FLOAT64's range is
//     written as a JSON string holding its text, so the digits stay readable; the parser refuses deeper
//     nesting than fastjson.MaxDepth (300), so no JSON column nests deeper.
//   - TIMESTAMP lies in 0001-01-01 00:00:00 .. 9999-12-31 23:59:59.999999 UTC
//     (https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#timestamp_type); a time outside
//     it leaves its typed column NULL, and the value as sent is in the event's JSON (data or extra).
//   - INT64 and FLOAT64 columns hold only integers in range and finite floats (see coerce.go).
//   - Rows stay far below the 100 MB row size of load and query jobs
//     (https://cloud.google.com/bigquery/quotas#load_jobs): a typed text value is cut at maxTextBytes, a
//     list column at maxTextBytes in all, and a JSON value longer than maxJSONBytes is left NULL. An events
//     row then holds at most about 45 × 1 MiB of text and 2 × 16 MiB of JSON.

// Timestamp bounds in Unix microseconds: BigQuery's TIMESTAMP range.
const (
	minTimestampMicros = -62135596800000000 // 0001-01-01T00:00:00Z
	maxTimestampMicros = 253402300799999999 // 9999-12-31T23:59:59.999999Z
)

// Size bounds of one value, chosen so that a row stays well inside BigQuery's 100 MB row limit.
const (
	maxTextBytes = 1 << 20
	maxJSONBytes = 16 << 20
)

// Repair kinds, the first word of each entry of events.repairs. An entry is the kind alone when it concerns
// the event as sent (utf8, surrogate), or "kind:column" naming the column repaired, qualified by its table
// when it is not events (e.g. "truncated:leads.summary").
const (
	RepairUTF8      = "utf8"      // invalid UTF-8 bytes became U+FFFD
	RepairSurrogate = "surrogate" // a \u escape of an unpaired UTF-16 surrogate became U+FFFD
	RepairNumber    = "number"    // a JSON number outside FLOAT64's range became a JSON string of its text
	RepairTimestamp = "timestamp" // a time outside 0001-01-01..9999-12-31 left the typed column NULL
	RepairTruncated = "truncated" // text longer than 1 MiB was cut at a character boundary
	RepairOmitted   = "omitted"   // a JSON value longer than 16 MiB was left NULL
)

// repairs collects what was repaired in one event and its child rows, each entry once, in the order found.
type repairs struct{ list []string }

func (r *repairs) reset() { r.list = r.list[:0] }

// add records kind for column col of table (col "" for the event as a whole).
func (r *repairs) add(kind, table, col string) {
	e := kind
	switch {
	case col == "":
	case table == TableEvents:
		e = kind + ":" + col
	default:
		e = kind + ":" + table + "." + col
	}
	for _, have := range r.list {
		if have == e {
			return
		}
	}
	r.list = append(r.list, e)
}

// needsCleaning reports whether a line holds invalid UTF-8 or a \u escape that may be a UTF-16 surrogate
// (D800–DFFF). It errs on the side of true (an escaped backslash followed by "ud8…" counts), which only costs
// a pass of cleanLine. Most lines are valid ASCII without such escapes, and this is the cost they pay.
func needsCleaning(b []byte) bool {
	if !utf8.Valid(b) {
		return true
	}
	for {
		i := bytes.Index(b, []byte(`\u`))
		if i < 0 {
			return false
		}
		b = b[i+2:]
		if len(b) >= 2 && b[0]|0x20 == 'd' && (b[1] >= '8' && b[1] <= '9' || b[1]|0x20 >= 'a' && b[1]|0x20 <= 'f') {
			return true
		}
	}
}

// cleanLine appends b to dst with every invalid UTF-8 byte replaced by U+FFFD and every \u escape of an
// unpaired surrogate replaced by \ufffd; paired surrogate escapes and all other bytes are kept. It works on
// the JSON text before parsing, the only place where an escaped backslash ("\\ud800", text) can be told from a
// surrogate escape ("\ud800"). It reports which of the two it replaced.
func cleanLine(dst, b []byte) (out []byte, badUTF8, badSurrogate bool) {
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\' && i+1 < len(b) && b[i+1] == 'u' && i+6 <= len(b):
			r, ok := hex4(b[i+2 : i+6])
			if !ok || !utf16.IsSurrogate(r) {
				dst = append(dst, b[i:i+6]...)
				i += 6
				continue
			}
			if r < 0xdc00 && i+12 <= len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				if r2, ok := hex4(b[i+8 : i+12]); ok && r2 >= 0xdc00 && r2 <= 0xdfff {
					dst = append(dst, b[i:i+12]...)
					i += 12
					continue
				}
			}
			dst = append(dst, `\ufffd`...)
			badSurrogate = true
			i += 6
		case c == '\\' && i+1 < len(b) && b[i+1] < utf8.RuneSelf:
			dst = append(dst, c, b[i+1]) // an escape pair, so "\\" is never read as the start of one
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
				badUTF8 = true
				i++
				continue
			}
			dst = append(dst, b[i:i+size]...)
			i += size
		}
	}
	return dst, badUTF8, badSurrogate
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c|0x20 >= 'a' && c|0x20 <= 'f':
			r = r<<4 | rune(c|0x20-'a'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// appendJSON appends v as strict RFC 8259 JSON: strings re-escaped (control characters as \u00XX), object keys
// in their original order, and numbers kept as sent unless they are outside FLOAT64's range or not RFC 8259
// numbers (fastjson reads NaN and Inf), which become JSON strings of their text, recorded in rep as a number
// repair of table.col (rep may be nil). fastjson's own MarshalTo cannot be used: it quotes strings the Go way
// ("\x01"), which is not JSON, and copies untouched strings and numbers as sent.
func appendJSON(dst []byte, v *fastjson.Value, rep *repairs, table, col string) []byte {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		dst = append(dst, '{')
		first := true
		o.Visit(func(k []byte, val *fastjson.Value) {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSON(dst, val, rep, table, col)
		})
		return append(dst, '}')
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for i, e := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSON(dst, e, rep, table, col)
		}
		return append(dst, ']')
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return appendJSONString(dst, b)
	case fastjson.TypeNumber:
		start := len(dst)
		dst = v.MarshalTo(dst)
		if safeNumber(dst[start:]) {
			return dst
		}
		text := string(dst[start:])
		if rep != nil {
			rep.add(RepairNumber, table, col)
		}
		return envelope.AppendString(dst[:start], text)
	default:
		return v.MarshalTo(dst) // true, false, null
	}
}

// appendJSONString appends b as a JSON string. Strings here come from cleaned lines, so they are valid UTF-8
// and most need no escape: those are copied as they are, found eight bytes at a time; the others are quoted
// by envelope.AppendString, which owns JSON escaping.
func appendJSONString(dst, b []byte) []byte {
	if !needsEscape(b) {
		dst = append(dst, '"')
		dst = append(dst, b...)
		return append(dst, '"')
	}
	return envelope.AppendString(dst, bytesString(b))
}

// needsEscape reports whether b holds a byte JSON strings escape: a control character, '"' or '\\'.
func needsEscape(b []byte) bool {
	for len(b) >= 8 {
		if !envelope.PlainWord(binary.LittleEndian.Uint64(b)) {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' {
			return true
		}
	}
	return false
}

// safeNumber reports whether s is an RFC 8259 number (https://www.rfc-editor.org/rfc/rfc8259#section-6) that
// rounds to a finite FLOAT64 other than a non-zero value rounded to zero: what PARSE_JSON's 'round' mode and
// DuckDB's JSON both store.
func safeNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	exp := i < len(s) && (s[i] == 'e' || s[i] == 'E')
	if exp {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i != len(s) {
		return false
	}
	if !exp && len(s) < 300 {
		return true // fewer than 300 integer digits: below 1e300, and no fraction can round a non-zero to 0
	}
	f, err := strconv.ParseFloat(bytesString(s), 64)
	if err != nil {
		return false // out of range
	}
	if f == 0 {
		// Underflow: a mantissa with a non-zero digit that parsed to zero.
		m := s
		if e := bytes.IndexAny(s, "eE"); e >= 0 {
			m = s[:e]
		}
		return len(bytes.Trim(m, "-0.")) == 0
	}
	return true
}

// cutText returns b cut to at most n bytes at a UTF-8 character boundary.
func cutText(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	b = b[:n]
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				b = b[:i]
			}
			break
		}
	}
	return b
}

// bytesString views b as a string without copying; the callee must not keep it.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
