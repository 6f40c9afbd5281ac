package transform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// hugeLines are hostile events too big for a testdata file: text, JSON, a list and a key past the size bounds.
func hugeLines() []string {
	skills := make([]string, 3000)
	for i := range skills {
		skills[i] = fmt.Sprintf("%q", strings.Repeat("s", 1000))
	}
	return []string{
		// 3 MiB of two-byte characters after one ASCII byte, so the 1 MiB cut falls inside a character.
		`{"eventId":"h_huge_text","eventType":"message.sent","data":{"message":"x` + strings.Repeat("é", 3<<19) + `"}}`,
		`{"eventId":"h_huge_json","eventType":"message.sent","data":{"blob":"` + strings.Repeat("j", 17<<20) + `"}}`,
		`{"eventId":"h_huge_skills","eventType":"lead_extractor.job.completed","data":{"leads":[{"id":"l1","skills":[` + strings.Join(skills, ",") + `]}]}}`,
		`{"eventId":"h_huge_id` + strings.Repeat("i", 2<<20) + `","eventType":"message.sent","data":{}}`,
	}
}

// runHostile transforms testdata/hostile.ndjson and the huge lines, and returns the result and the events
// rows keyed by event_id (cut to 40 bytes).
func runHostile(t *testing.T) (Result, map[string]map[string]any) {
	t.Helper()
	dir := t.TempDir()
	hostile, err := os.ReadFile("testdata/hostile.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.ndjson")
	if err := os.WriteFile(huge, []byte(strings.Join(hugeLines(), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Files(context.Background(), []string{"testdata/hostile.ndjson", huge}, filepath.Join(dir, "out"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	lines := int64(bytes.Count(hostile, []byte("\n")) + len(hugeLines()))
	if res.Counts.Events != lines || res.Counts.Quarantined != 0 {
		t.Errorf("counts %+v: want each of the %d hostile lines to be one event and none quarantined", res.Counts, lines)
	}
	// The loader writes the occurred_at range into the batch manifest as JSON times, which must be
	// representable (a year past 9999 made the manifest unwritable and stopped every later load).
	for _, us := range []int64{res.Counts.MinOccurred, res.Counts.MaxOccurred} {
		if _, err := time.UnixMicro(us).UTC().MarshalJSON(); err != nil || us < bqMinTimestamp || us > bqMaxTimestamp {
			t.Errorf("occurred_at bound %d µs: %v", us, err)
		}
	}
	out, err := ReadParquetJSON(res.Table(TableEvents).Path)
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]map[string]any{}
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var row map[string]any
		if err := json.Unmarshal(line, &row); err != nil {
			t.Fatal(err)
		}
		id := row["event_id"].(string)
		if len(id) > 40 {
			id = id[:40]
		}
		events[id] = row
	}
	return res, events
}

// Every value written from the hostile corpus is inside BigQuery's documented domains (domain_test.go).
func TestHostileValuesInBigQueryDomains(t *testing.T) {
	res, _ := runHostile(t)
	checkOutputDomains(t, res, "")
}

// checkOutputDomains checks every table a run wrote against BigQuery's domains; what names the input.
func checkOutputDomains(t *testing.T, res Result, what string) {
	t.Helper()
	for _, d := range tableDefs {
		jsonCols := map[string]bool{}
		for _, c := range d.columns {
			jsonCols[c.name] = c.json
		}
		tbl, err := readTable(res.Table(d.name).Path)
		if err != nil {
			t.Fatal(err)
		}
		tr := array.NewTableReader(tbl, 1<<10)
		for tr.Next() {
			if err := checkBigQueryDomains(tr.RecordBatch(), jsonCols); err != nil {
				t.Errorf("%s%s: %v", what, d.name, err)
			}
		}
		tr.Release()
		tbl.Release()
	}
}

// Each hostile event is repaired as docs/bad-values.md says, and its repairs column says what was repaired.
func TestHostileRepairs(t *testing.T) {
	_, events := runHostile(t)
	u := func(s string) string { return strings.ReplaceAll(s, `\ufffd`, "\uFFFD") } // JSON text as stored: U+FFFD unescaped
	tests := []struct {
		id      string
		repairs []string
		want    map[string]any // column → value (JSON-decoded); a string ending in "…" is a prefix
	}{
		{"h_utf8", []string{"utf8"}, map[string]any{"message": "bad \ufffd\ufffd bytes", "lead_id": "l\ufffd",
			"data": u(`{"message":"bad \ufffd\ufffd bytes","leadId":"l\ufffd","k\ufffd\ufffd":"v"}`)}},
		{"h_utf8_id_\ufffd", []string{"utf8"}, map[string]any{"event_type_raw": "reply.received\ufffd", "reply": "\ufffd\ufffd\ufffd encoded surrogate"}},
		{"h_surrogate", []string{"surrogate"}, map[string]any{"message": "preview cut in an emoji \ufffd", "note": "\ufffd low first",
			"data": u(`{"message":"preview cut in an emoji \ufffd","note":"\ufffd low first","\ufffdkey":"lone in a key"}`)}},
		{"h_pair", []string{"surrogate"}, map[string]any{"message": `kept 😀 and \ud800 as text`, "note": "\ufffd\ufffd two highs"}},
		{"h_surrogate_id_\ufffd", []string{"surrogate"}, map[string]any{"workspace_id": "\ufffd"}},
		{"h_ctrl_ts", []string{}, map[string]any{"occurred_at": nil, "extra": `{"timestamp":"\u0001"}`, "note": "bell \a vt \v esc \x1b del \x7f"}},
		{"h_ts_micros", []string{"timestamp:occurred_at"}, map[string]any{"occurred_at": nil, "extra": `{"timestamp":999999999999999}`}},
		{"h_ts_year0", []string{"timestamp:occurred_at", "timestamp:accepted_at", "timestamp:paused_at"},
			map[string]any{"occurred_at": nil, "accepted_at": nil, "paused_at": nil, "finished_at": "0001-01-01T00:00:00Z", "extra": `{"timestamp":"0000-01-01T00:00:00Z"}`}},
		{"h_ts_max", []string{"number:data", "timestamp:finished_at"}, map[string]any{"occurred_at": "9999-12-31T23:59:59.999999Z", "finished_at": nil, "data": `{"finishedAt":"1e400"}`}},
		{"h_num", []string{"number:data"}, map[string]any{"sequence_step": nil, "total_leads": nil, "credits_total": nil, "credits_extraction": nil,
			"data": `{"big":"1e400","neg":"-1e400","tiny":"1e-400","zero":0e999,"wide":123456789012345678901234567890,"digits":"` + strings.Repeat("9", 400) +
				`","ok":1.5e300,"sequenceStep":99999999999999999999,"totalLeads":"1e400","credits_used":{"total":"1e400","extraction":"1e400"}}`}},
		{"h_num_extra", []string{"number:extra"}, map[string]any{"extra": `{"score":"1e400","nested":{"a":[1,"-1e999",{"b":"1E+400"}]}}`}},
		{"h_num_lead", []string{"number:leads.lead", "number:experience.element", "number:education.element"}, map[string]any{"lead_count": 1.0}},
		{"h_nul", []string{}, map[string]any{"message": "a\x00b", "note": "\x00", "data": `{"message":"a\u0000b","\u0000":"nul key","note":"\u0000"}`}},
		{"h_unicode", []string{}, map[string]any{"message": "line\u2028sep \ufeffbom \uffff nonchar 𐀀 first astral", "note": `"quote" \ back / slash`}},
		{"h_types", []string{"number:data"}, map[string]any{"event_type_raw": `{"weird":"1e400"}`, "workspace_id": "1e400", "lead_id": `["1e400"]`,
			"message": `{"x":"\u0001","y":"1e400"}`, "extra": `{"timestamp":[1,2]}`, "sequence_step": nil}},
		{"1e400", []string{}, map[string]any{"event_type": "message.sent"}},
		{"h_deep", []string{"number:data"}, map[string]any{"data": strings.Repeat(`{"a":`, 290) + `"1e400"` + strings.Repeat("}", 290)}},
		{"h_dup", []string{"number:data"}, map[string]any{"message": "first", "lead_count": 1.0, "data": `{"message":"first","message":"second \u0001","leads":"1e400"}`}},
		{"h_env_utf8", []string{"utf8"}, map[string]any{"message": "\ufffd\ufffd env", "signature": "valid", "received_at": "2026-11-23T01:49:28Z"}},
		{"h_env_text", []string{"surrogate", "number:data"}, map[string]any{"data": u(`{"message":"\ufffd inner","n":"1e400","c":"\u0001"}`)}},
		{"h_env_recv", []string{"timestamp:received_at"}, map[string]any{"received_at": nil, "occurred_at": "2024-02-24T10:30:00Z"}},
		{"h_env_recv2", []string{"surrogate", "timestamp:received_at"}, map[string]any{"received_at": nil, "signature": "\ufffd"}},
		{"h_requeue", []string{"surrogate", "number:data"}, map[string]any{"source_file": "seg-\ufffd.ndjson", "source_line": 7.0, "data": u(`{"message":"\ufffd","n":"1e400"}`)}},
		{"h_huge_text", []string{"truncated:message"}, map[string]any{"message": "xéé…"}},
		{"h_huge_json", []string{"omitted:data"}, map[string]any{"data": nil}},
		{"h_huge_skills", []string{"truncated:leads.skills"}, map[string]any{"lead_count": 1.0}},
		{"h_huge_id" + strings.Repeat("i", 31), []string{"truncated:event_id"}, map[string]any{}},
	}
	for _, tt := range tests {
		row, ok := events[tt.id]
		if !ok {
			t.Errorf("%s: no events row", tt.id)
			continue
		}
		var got []string
		for _, r := range row["repairs"].([]any) {
			got = append(got, r.(string))
		}
		if !reflect.DeepEqual(got, tt.repairs) && !(len(got) == 0 && len(tt.repairs) == 0) {
			t.Errorf("%s: repairs %q, want %q", tt.id, got, tt.repairs)
		}
		for col, want := range tt.want {
			g := row[col]
			if w, ok := want.(string); ok && strings.HasSuffix(w, "…") {
				if s, _ := g.(string); !strings.HasPrefix(s, strings.TrimSuffix(w, "…")) {
					t.Errorf("%s: %s = %.80q, want it to start with %q", tt.id, col, s, w)
				}
				continue
			}
			if !reflect.DeepEqual(g, want) {
				t.Errorf("%s: %s = %#v, want %#v", tt.id, col, g, want)
			}
		}
	}
	if m := events["h_huge_text"]["message"].(string); len(m) > maxTextBytes || !utf8.ValidString(m) || len(m) < maxTextBytes-4 {
		t.Errorf("h_huge_text: message of %d bytes (valid UTF-8 %v), want cut just under %d", len(m), utf8.ValidString(m), maxTextBytes)
	}
	if d := events["h_huge_text"]["data"].(string); len(d) < 3<<20 {
		t.Errorf("h_huge_text: data of %d bytes, want the whole message kept in it", len(d))
	}
}

func TestCleanLine(t *testing.T) {
	tests := []struct {
		in, want     string
		utf8, surrog bool
	}{
		{`{"a":"plain"}`, `{"a":"plain"}`, false, false},
		{"{\"a\":\"\xff\"}", `{"a":"` + "\uFFFD" + `"}`, true, false},
		{"{\"a\":\"\xe2\x82\"}", `{"a":"` + "\uFFFD\uFFFD" + `"}`, true, false},
		{`{"a":"\ud800"}`, `{"a":"\ufffd"}`, false, true},
		{`{"a":"\uDFFF\uD800"}`, `{"a":"\ufffd\ufffd"}`, false, true},
		{`{"a":"\ud83d\ude00"}`, `{"a":"\ud83d\ude00"}`, false, false},
		{`{"a":"\\ud800"}`, `{"a":"\\ud800"}`, false, false},
		{`{"a":"\\\ud800"}`, `{"a":"\\\ufffd"}`, false, true},
		{`{"a":"\ud800\u0041"}`, `{"a":"\ufffd\u0041"}`, false, true},
		{`{"a":"\ud8`, `{"a":"\ud8`, false, false},
		{"{\"a\":\"é\"}", "{\"a\":\"é\"}", false, false},
	}
	for _, tt := range tests {
		got, u, s := cleanLine(nil, []byte(tt.in))
		if string(got) != tt.want || u != tt.utf8 || s != tt.surrog {
			t.Errorf("cleanLine(%q) = %q, %v, %v; want %q, %v, %v", tt.in, got, u, s, tt.want, tt.utf8, tt.surrog)
		}
		if needed := needsCleaning([]byte(tt.in)); !needed && string(got) != tt.in {
			t.Errorf("needsCleaning(%q) = false, but cleaning changes it", tt.in)
		}
	}
}

func TestSafeNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-0": true, "1.5": true, "1e308": true, "1.7976931348623157e308": true, "-2.5E-300": true, "0e99999": true,
		"123456789012345678901234567890": true, "0.000000001": true, "5e-324": true,
		"1e400": false, "-1e309": false, "1.8e308": false, "1e-400": false, strings.Repeat("9", 400): false,
		"NaN": false, "Inf": false, "-inf": false, "01": false, "1.": false, ".5": false, "+1": false, "1e": false, "": false, "-": false,
	} {
		if got := safeNumber([]byte(s)); got != want {
			t.Errorf("safeNumber(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCutText(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"aé", 2, "a"}, {"aé", 3, "aé"}, {"a😀", 4, "a"}, {"a😀b", 5, "a😀"},
	} {
		if got := string(cutText([]byte(tt.in), tt.n)); got != tt.want {
			t.Errorf("cutText(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// FuzzValuesInBigQueryDomains sends any line through the transform: whatever it writes is inside BigQuery's
// documented domains (domain_test.go), and nothing is lost (each non-empty line is an event or quarantined).
//
//	go test -run='^$' -fuzz=FuzzValuesInBigQueryDomains -fuzztime=30s ./transform
func FuzzValuesInBigQueryDomains(f *testing.F) {
	raw, err := os.ReadFile("testdata/hostile.ndjson")
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Skip("one line at a time")
		}
		dir := t.TempDir()
		in := filepath.Join(dir, "in.ndjson")
		if err := os.WriteFile(in, append(line, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Files(context.Background(), []string{in}, filepath.Join(dir, "out"), Options{Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(line)) > 0 && res.Counts.Events+res.Counts.Quarantined != 1 {
			t.Fatalf("%q: counts %+v, want one event or one quarantined line", line, res.Counts)
		}
		checkOutputDomains(t, res, fmt.Sprintf("%q: ", line))
	})
}

// needsEscape finds every byte JSON escapes, at every position of a word and of the tail.
func TestNeedsEscape(t *testing.T) {
	for c := range 256 {
		want := c < 0x20 || c == '"' || c == '\\'
		for pos := range 19 {
			b := bytes.Repeat([]byte("a"), 19)
			b[pos] = byte(c)
			if got := needsEscape(b); got != want {
				t.Fatalf("needsEscape with byte %#x at %d = %v, want %v", c, pos, got, want)
			}
		}
	}
	if needsEscape([]byte("plain ascii and é 😀 ÿ\u2028 text, long enough for words")) {
		t.Error("needsEscape flags text with nothing to escape")
	}
}
