package extract

import (
	"bytes"
	"encoding/json"
)

// topLevel returns the raw values of the keys eventId and eventType of a compact JSON document (as written by
// json.Compact: valid, no insignificant white space), and whether it is an object at all. It scans the top
// level once and skips nested values without decoding them. As with encoding/json, the last of duplicate keys
// wins.
func topLevel(doc []byte) (id, typ []byte, isObject bool) {
	if len(doc) < 2 || doc[0] != '{' {
		return nil, nil, false
	}
	i := 1
	for i < len(doc) && doc[i] == '"' {
		keyEnd := skipString(doc, i)
		key := doc[i:keyEnd]
		i = keyEnd + 1 // past ':'
		valEnd := skipValue(doc, i)
		switch keyName(key) {
		case "eventId":
			id = doc[i:valEnd]
		case "eventType":
			typ = doc[i:valEnd]
		}
		i = valEnd + 1 // past ',' or '}'
	}
	return id, typ, true
}

// keyName returns the text of a quoted key, decoding escapes only when there are any.
func keyName(quoted []byte) string {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return string(quoted[1 : len(quoted)-1])
	}
	var s string
	json.Unmarshal(quoted, &s)
	return s
}

// skipString returns the index just past the string starting at doc[i] == '"'.
func skipString(doc []byte, i int) int {
	for i++; i < len(doc); i++ {
		switch doc[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(doc)
}

// skipValue returns the index just past the value starting at doc[i].
func skipValue(doc []byte, i int) int {
	depth := 0
	for i < len(doc) {
		switch doc[i] {
		case '"':
			i = skipString(doc, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return len(doc)
}

// scalarString returns a JSON string's value or a number's literal; "" for anything else.
func scalarString(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	if raw[0] == '"' {
		if s, ok := quickString(raw); ok {
			return s
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	}
	if raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9') {
		return string(raw)
	}
	return ""
}
