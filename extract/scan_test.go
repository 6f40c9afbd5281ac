package extract

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// checkScan compares scanJSON on doc with encoding/json: the same verdict, and for a valid document the
// same reading of its shape and of the two keys.
func checkScan(t *testing.T, doc []byte) {
	t.Helper()
	shown := doc
	if len(shown) > 120 {
		shown = append(append(bytes.Clone(doc[:60]), "…"...), doc[len(doc)-60:]...)
	}
	s, ok := scanJSON(doc)
	if want := json.Valid(doc); ok != want {
		t.Fatalf("scanJSON(%q) valid = %v, json.Valid says %v", shown, ok, want)
	}
	if !ok {
		return
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil {
		t.Fatal(err)
	}
	if spaced := !bytes.Equal(compact.Bytes(), doc); s.spaced != spaced {
		t.Fatalf("scanJSON(%q) spaced = %v, want %v", shown, s.spaced, spaced)
	}
	wid, wtyp, _ := reference(compact.Bytes())
	if wobj := compact.Bytes()[0] == '{'; s.object != wobj {
		t.Fatalf("scanJSON(%q) object = %v, want %v", shown, s.object, wobj)
	}
	if s.spaced {
		if s.id != nil || s.typ != nil {
			t.Fatalf("scanJSON(%q) spaced but returned keys %q, %q", shown, s.id, s.typ)
		}
		return
	}
	if id, typ := scalarString(s.id), scalarString(s.typ); id != wid || typ != wtyp {
		t.Fatalf("scanJSON(%q) keys %q, %q; encoding/json says %q, %q", shown, id, typ, wid, wtyp)
	}
}

func TestScanJSON(t *testing.T) {
	for _, doc := range []string{
		`{"eventId":"evt_1","eventType":"message.sent","data":{"eventId":"nested","a":[1,{"eventType":"x"}]}}`,
		`{"eventType":"t","eventId":12345}`, `{"eventId":"first","eventId":"last"}`, `{"event\u0049d":"escaped key"}`,
		`{"eventId":"a\"b\\\/\b\f\n\r\t\u00e9","eventType":{"x":[]}}`, `{"eventId":"caf` + "\xc3\xa9" + `","x":"\xff"}`,
		`{}`, `[]`, `[{"eventId":"x"}]`, `"eventId"`, `null`, `true`, `false`, `0`, `-0.5e+10`, `1E-2`, `[[],{},[{}]]`,
		" {\"eventId\" : \"e\" ,\n\"eventType\":\t\"t\"}\r\n", `[ 1 , 2 ]`, `{"a" : {"b" : [ ] } }`,
		// Not JSON.
		``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{"a":1 "b":2}`, `{1:2}`, `{"a":1]`,
		`[1}`, `01`, `-`, `1.`, `.5`, `1e`, `1e+`, `+1`, `tru`, `truex`, `nul`, `"abc`, `"a\x"`, `"\u12g4"`,
		`"\u123"`, "\"\x01\"", "\"\t\"", `"a" "b"`, `{}{}`, `{"a":1}x`, "\xef\xbb\xbf{}", `NaN`, `[-]`,
	} {
		checkScan(t, []byte(doc))
	}
}

// encoding/json refuses documents nested deeper than 10000; so must scanJSON, and no sooner.
func TestScanJSONDepth(t *testing.T) {
	for _, depth := range []int{63, 64, 65, 255, 256, 257, maxDepth, maxDepth + 1} {
		checkScan(t, []byte(strings.Repeat("[", depth)+strings.Repeat("]", depth)))
		checkScan(t, []byte(strings.Repeat(`{"a":`, depth)+"1"+strings.Repeat("}", depth)))
		checkScan(t, []byte(strings.Repeat(`[{"a":`, depth/2)+"1"+strings.Repeat("}]", depth/2)))
	}
}

// FuzzScanJSON checks the one-pass scanner against encoding/json on any input.
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{`{"eventId":"e","eventType":"t"}`, `{"a":[1,{"b":"}"}],"eventId":"x"}`, `[1]`,
		`{"eventId":"\u0041"}`, `{"eventId":-1.5e3}`, " { \"a\" : [ true , false , null ] } ", `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) { checkScan(t, doc) })
}

// quickString must agree with encoding/json whenever it answers.
func TestQuickString(t *testing.T) {
	for _, raw := range []string{`"evt_1"`, `""`, `"caf` + "\xc3\xa9" + `"`, `"bad` + "\xff" + `"`, `"a\"b"`, `"\u0041"`, `12`, `"`} {
		got, ok := quickString([]byte(raw))
		var want string
		if err := json.Unmarshal([]byte(raw), &want); ok && (err != nil || got != want) {
			t.Errorf("quickString(%s) = %q, encoding/json says %q (%v)", raw, got, want, err)
		}
		if wantOK := raw == `"evt_1"` || raw == `""` || raw == `"caf`+"\xc3\xa9"+`"`; ok != wantOK {
			t.Errorf("quickString(%s) answered %v, want %v", raw, ok, wantOK)
		}
	}
}

// Strings are scanned eight bytes at a time: a byte that ends or breaks a string must be seen at every
// offset within a word.
func TestScanJSONStringWords(t *testing.T) {
	for off := range 17 {
		for _, x := range []string{`\"`, `\\`, `\n`, `\u00e9`, `"`, "\x00", "\x01", "\x1f", " ", "\x7f", "\x80", "\xff", "!", "#", "[", "]", "\\", "\\x"} {
			pad := strings.Repeat("a", off)
			checkScan(t, []byte(`{"k":"`+pad+x+strings.Repeat("b", 20)+`"}`))
			checkScan(t, []byte(`["`+pad+x+`"]`))
		}
	}
}
