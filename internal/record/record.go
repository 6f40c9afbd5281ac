// Package record frames one buffered record as a self-checking NDJSON line: the record, a JSON object, carries
// its CRC-32C (Castagnoli, as Prometheus' WAL uses) as its last key, so every line stays a plain JSON object
// that any NDJSON tool reads, and a changed byte anywhere before the checksum is detected.
//
// A framed line is the record with its closing brace replaced by
//
//	,"_crc32c":"<8 lower-case hex digits>"}
//
// (without the comma for the empty object). The checksum covers every byte of the line before the quote that
// opens the "_crc32c" key. Lines written before framing existed (buffer format v1) carry no trailer; Open
// reports them as Unframed, and readers accept them unchecked. The format is written up in
// docs/buffer-format.md.
package record

import (
	"bytes"
	"encoding/hex"
	"hash/crc32"
)

// Key is the name of the checksum key. It is reserved: a record must not use it itself.
const Key = "_crc32c"

// trailerHead is what precedes the checksum digits; trailerLen is the whole trailer's length.
const (
	trailerHead = `"` + Key + `":"`
	trailerLen  = len(trailerHead) + 8 + len(`"}`)
)

// MaxOverhead is the most framing adds to a record's length.
const MaxOverhead = trailerLen

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Status is what Open found.
type Status int

const (
	// Unframed: the line has no checksum trailer (format v1, an export, a quarantine record).
	Unframed Status = iota
	// Intact: the line has a trailer and its checksum matches.
	Intact
	// Corrupt: the line has a trailer whose checksum does not match, or a trailer that is not well formed.
	Corrupt
)

// Append appends rec, a JSON object without a trailing newline, framed with its checksum, to dst. rec must
// end with '}' (callers pass objects they built or checked).
func Append(dst, rec []byte) []byte {
	return AppendTrailer(append(dst, rec[:len(rec)-1]...), rec)
}

// AppendTrailer appends to dst what framing puts after rec's bytes up to (not including) its closing brace:
// the line is rec[:len(rec)-1] followed by these bytes. Writers of large records use it to write the record
// itself from where it is, without copying it.
func AppendTrailer(dst, rec []byte) []byte {
	body := rec[:len(rec)-1]
	sum := crc32.Update(0, castagnoli, body)
	if len(bytes.TrimSpace(body)) > 1 { // not "{": the record has keys before the trailer
		dst = append(dst, ',')
		sum = crc32.Update(sum, castagnoli, []byte{','})
	}
	dst = append(dst, trailerHead...)
	dst = hex.AppendEncode(dst, []byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
	return append(dst, '"', '}')
}

// Open checks a line (without its newline) and returns the record inside it: for an Intact line the record
// without its trailer, for any other line the line itself. Open overwrites one byte of an Intact line, so
// the caller must own it; an Intact line should not be used afterwards except through rec.
func Open(line []byte) (rec []byte, st Status) {
	n := len(line)
	if n < trailerLen+1 || !bytes.HasSuffix(line, []byte(`"}`)) {
		return line, Unframed
	}
	head := n - trailerLen
	if !bytes.Equal(line[head:head+len(trailerHead)], []byte(trailerHead)) {
		if bytes.Contains(line[max(0, head-4):], []byte(Key)) {
			return line, Corrupt // a trailer with a damaged head
		}
		return line, Unframed
	}
	digits := line[head+len(trailerHead) : n-2]
	var want [4]byte
	if _, err := hex.Decode(want[:], digits); err != nil || !lowerHex(digits) {
		return line, Corrupt
	}
	sum := crc32.Checksum(line[:head], castagnoli)
	if sum != uint32(want[0])<<24|uint32(want[1])<<16|uint32(want[2])<<8|uint32(want[3]) {
		return line, Corrupt
	}
	switch prev := line[head-1]; prev {
	case ',':
		line[head-1] = '}'
		return line[:head], Intact
	case '{':
		line[head] = '}'
		return line[:head+1], Intact
	}
	return line, Corrupt
}

func lowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
