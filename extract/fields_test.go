package extract

import (
	"bytes"
	"encoding/json"
	"testing"
)

// reference is what topLevel must agree with: encoding/json's reading of the two keys.
func reference(doc []byte) (id, typ string, isObject bool) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	var obj map[string]json.RawMessage
	if dec.Decode(&obj) != nil {
		return "", "", false
	}
	return scalarString(obj["eventId"]), scalarString(obj["eventType"]), true
}

func TestTopLevel(t *testing.T) {
	tests := []struct {
		doc      string
		id, typ  string
		isObject bool
	}{
		{`{"eventId":"evt_1","eventType":"message.sent","data":{}}`, "evt_1", "message.sent", true},
		{`{"data":{"eventId":"nested","list":[{"eventType":"x"}]},"eventType":"t","eventId":"top"}`, "top", "t", true},
		{`{"eventId":12345,"eventType":null}`, "12345", "", true},
		{`{"eventId":"a\"b\\","x":"}"}`, "a\"b\\", "", true},
		{`{"eventId":"first","eventId":"last"}`, "last", "", true},
		{`{"event\u0049d":"escaped key"}`, "escaped key", "", true},
		{`{"eventId":{"x":1}}`, "", "", true},
		{`{}`, "", "", true},
		{`[{"eventId":"x"}]`, "", "", false},
		{`"eventId"`, "", "", false},
		{`null`, "", "", false},
	}
	for _, tc := range tests {
		id, typ, ok := topLevel([]byte(tc.doc))
		if scalarString(id) != tc.id || scalarString(typ) != tc.typ || ok != tc.isObject {
			t.Errorf("topLevel(%s) = %q, %q, %v; want %q, %q, %v", tc.doc, id, typ, ok, tc.id, tc.typ, tc.isObject)
		}
	}
}

// FuzzTopLevel checks the one-pass scanner against encoding/json on any valid document.
func FuzzTopLevel(f *testing.F) {
	for _, s := range []string{`{"eventId":"e","eventType":"t"}`, `{"a":[1,{"b":"}"}],"eventId":"x"}`, `[1]`, `{"eventId":"\u0041"}`, `{"eventId":-1.5e3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var doc bytes.Buffer
		if json.Compact(&doc, raw) != nil {
			return
		}
		id, typ, ok := topLevel(doc.Bytes())
		wid, wtyp, wok := reference(doc.Bytes())
		if ok != wok || (ok && (scalarString(id) != wid || scalarString(typ) != wtyp)) {
			t.Fatalf("topLevel(%s) = %q, %q, %v; encoding/json says %q, %q, %v", doc.Bytes(), id, typ, ok, wid, wtyp, wok)
		}
	})
}
