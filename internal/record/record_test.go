package record

import (
	"encoding/json"
	"testing"
)

func TestAppendOpenRoundTrip(t *testing.T) {
	for _, rec := range []string{`{}`, `{"v":2}`, `{"a":"b","c":[1,2,{"d":null}]}`, `{"s":"\u00e9\ud83d\ude00"}`} {
		line := Append(nil, []byte(rec))
		if !json.Valid(line) {
			t.Fatalf("framed %s is not JSON: %s", rec, line)
		}
		got, st := Open(append([]byte(nil), line...))
		if st != Intact || string(got) != rec {
			t.Fatalf("Open(%s) = %s, %v; want %s, Intact", line, got, st, rec)
		}
	}
}

func TestOpenDetectsEveryChangedByte(t *testing.T) {
	line := Append(nil, []byte(`{"v":2,"received_at":"2024-02-24T10:30:00Z","payload":{"eventId":"e1"}}`))
	for i := range line {
		for _, delta := range []byte{1, 0x20, 0x80} {
			bad := append([]byte(nil), line...)
			bad[i] ^= delta
			if _, st := Open(bad); st == Intact {
				t.Fatalf("byte %d (%q) xor %#x: still Intact: %s", i, line[i], delta, bad)
			}
		}
	}
}

func TestOpenUnframed(t *testing.T) {
	for _, line := range []string{`{"v":1,"payload":{}}`, `{"eventId":"x"}`, `not json`, ``, `{"quarantine":{"reason":"r"},"line":"x"}`} {
		if got, st := Open([]byte(line)); st != Unframed || string(got) != line {
			t.Errorf("Open(%q) = %q, %v; want the line, Unframed", line, got, st)
		}
	}
}

func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"a":1}`))
	f.Add(Append(nil, []byte(`{"a":1}`)))
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := string(line)
		rec, st := Open(line)
		if st == Intact {
			// Framing the record again gives back the line exactly.
			if again := Append(nil, rec); string(again) != orig {
				t.Fatalf("Intact %q re-frames to %q", orig, again)
			}
		}
	})
}
