package extract

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"

	"sendpilot-loader/extract/envelope"
)

// maxDepth is the deepest nesting encoding/json accepts; scanJSON accepts the same documents.
const maxDepth = 10000

// scanned is what scanJSON learnt of a valid document.
type scanned struct {
	// object is true when the document is a JSON object.
	object bool
	// spaced is true when the document has white space outside its strings: compactValid must shorten it,
	// and id and typ are not set (topLevel finds them in the compacted document).
	spaced bool
	// id and typ are the raw values of the top-level keys eventId and eventType (the last of duplicates, as
	// with encoding/json), in the document itself; nil when absent, not an object, or spaced.
	id, typ []byte
}

// Scanner states: what must come next.
const (
	wantValue = iota // a value (white space skipped)
	wantKey          // a member's key (white space skipped)
	gotValue         // a value has just ended
)

// plainInString marks the bytes that a JSON string holds as they are: not the quote, not the backslash, not
// a control character. encoding/json accepts any other byte, whether or not it is valid UTF-8.
var plainInString = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanJSON reports whether doc is valid JSON, exactly as json.Valid does, and in the same single pass finds
// what the envelope needs of it: whether it is an object, whether it needs compacting and, when it does not,
// its top-level eventId and eventType. It allocates nothing for documents nested less than 256 deep.
func scanJSON(doc []byte) (s scanned, ok bool) {
	var inline [4]uint64
	objects := inline[:] // bit d is set when the container at depth d+1 is an object
	depth := 0
	n := len(doc)
	member, valStart := 0, 0 // the top-level key whose value is being read (1 eventId, 2 eventType), and where it starts
	i := s.skipSpace(doc, 0)
	s.object = i < n && doc[i] == '{'
	state := wantValue
	for {
		switch state {
		case wantValue:
			if i >= n {
				return s, false
			}
			switch c := doc[i]; c {
			case '{', '[':
				if depth == maxDepth {
					return s, false
				}
				if depth/64 == len(objects) {
					objects = append(objects, 0)
				}
				if bit := uint64(1) << (depth % 64); c == '{' {
					objects[depth/64] |= bit
				} else {
					objects[depth/64] &^= bit
				}
				depth++
				i = s.skipSpace(doc, i+1)
				switch {
				case i < n && doc[i] == c+2: // '{'+2 is '}', '['+2 is ']'
					depth--
					i++
					state = gotValue
				case c == '{':
					state = wantKey
				}
				continue
			case '"':
				if i, ok = scanString(doc, i); !ok {
					return s, false
				}
			case 't':
				if i, ok = scanLiteral(doc, i, "true"); !ok {
					return s, false
				}
			case 'f':
				if i, ok = scanLiteral(doc, i, "false"); !ok {
					return s, false
				}
			case 'n':
				if i, ok = scanLiteral(doc, i, "null"); !ok {
					return s, false
				}
			default:
				if i, ok = scanNumber(doc, i); !ok {
					return s, false
				}
			}
			state = gotValue
		case wantKey:
			if i >= n || doc[i] != '"' {
				return s, false
			}
			end, ok := scanString(doc, i)
			if !ok {
				return s, false
			}
			if depth == 1 {
				member = memberOf(doc[i:end])
			}
			i = s.skipSpace(doc, end)
			if i >= n || doc[i] != ':' {
				return s, false
			}
			i = s.skipSpace(doc, i+1)
			valStart = i
			state = wantValue
		case gotValue:
			if depth == 1 && member != 0 {
				if member == 1 {
					s.id = doc[valStart:i]
				} else {
					s.typ = doc[valStart:i]
				}
				member = 0
			}
			i = s.skipSpace(doc, i)
			if depth == 0 {
				if i != n {
					return s, false
				}
				if s.spaced {
					s.id, s.typ = nil, nil
				}
				return s, true
			}
			if i >= n {
				return s, false
			}
			inObject := objects[(depth-1)/64]>>((depth-1)%64)&1 == 1
			switch c := doc[i]; {
			case c == ',':
				i = s.skipSpace(doc, i+1)
				state = wantValue
				if inObject {
					state = wantKey
				}
			case c == '}' && inObject, c == ']' && !inObject:
				depth--
				i++
			default:
				return s, false
			}
		}
	}
}

// skipSpace returns the index of the first byte at or after i that is not JSON white space, and notes in s
// whether it skipped any.
func (s *scanned) skipSpace(doc []byte, i int) int {
	start := i
	for i < len(doc) {
		switch doc[i] {
		case ' ', '\t', '\n', '\r':
			i++
			continue
		}
		break
	}
	if i > start {
		s.spaced = true
	}
	return i
}

// memberOf tells which of the keys the envelope reads a quoted key is: 1 eventId, 2 eventType, 0 neither.
func memberOf(quoted []byte) int {
	switch string(quoted) {
	case `"eventId"`:
		return 1
	case `"eventType"`:
		return 2
	}
	if bytes.IndexByte(quoted, '\\') < 0 {
		return 0
	}
	switch keyName(quoted) {
	case "eventId":
		return 1
	case "eventType":
		return 2
	}
	return 0
}

// scanString returns the index just past the valid JSON string that starts at doc[i] == '"'.
func scanString(doc []byte, i int) (int, bool) {
	n := len(doc)
	for i++; i < n; i++ {
		for i+8 <= n && envelope.PlainWord(binary.LittleEndian.Uint64(doc[i:])) {
			i += 8
		}
		for i < n && plainInString[doc[i]] {
			i++
		}
		if i >= n {
			break
		}
		switch doc[i] {
		case '"':
			return i + 1, true
		case '\\':
			i++
			if i >= n {
				return i, false
			}
			switch doc[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= n || !isHex(doc[i+1]) || !isHex(doc[i+2]) || !isHex(doc[i+3]) || !isHex(doc[i+4]) {
					return i, false
				}
				i += 4
			default:
				return i, false
			}
		default: // a control character
			return i, false
		}
	}
	return i, false
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanLiteral returns the index just past word, which must start at doc[i].
func scanLiteral(doc []byte, i int, word string) (int, bool) {
	if len(doc)-i < len(word) || string(doc[i:i+len(word)]) != word {
		return i, false
	}
	return i + len(word), true
}

// scanNumber returns the index just past the JSON number that starts at doc[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(doc []byte, i int) (int, bool) {
	n := len(doc)
	if i < n && doc[i] == '-' {
		i++
	}
	switch {
	case i < n && doc[i] == '0':
		i++
	case i < n && '1' <= doc[i] && doc[i] <= '9':
		for i++; i < n && isDigit(doc[i]); i++ {
		}
	default:
		return i, false
	}
	if i < n && doc[i] == '.' {
		i++
		if i >= n || !isDigit(doc[i]) {
			return i, false
		}
		for i++; i < n && isDigit(doc[i]); i++ {
		}
	}
	if i < n && (doc[i] == 'e' || doc[i] == 'E') {
		i++
		if i < n && (doc[i] == '+' || doc[i] == '-') {
			i++
		}
		if i >= n || !isDigit(doc[i]) {
			return i, false
		}
		for i++; i < n && isDigit(doc[i]); i++ {
		}
	}
	return i, true
}

// quickString returns the value of a JSON string that holds no escapes and only valid UTF-8 without
// decoding it, and false for any other.
func quickString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') >= 0 || !utf8.Valid(inner) {
		return "", false
	}
	return string(inner), true
}
