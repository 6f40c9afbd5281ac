package transform

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// randomJSON returns a random JSON value of bounded depth: objects with arbitrary keys (including the names
// of typed columns, in both casings), arrays, Unicode and escaped strings, integers, floats, booleans, nulls.
func randomJSON(r *rand.Rand, depth int) any {
	k := r.IntN(9)
	if depth <= 0 {
		k = r.IntN(6)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return json.Number(fmt.Sprint(r.Int64N(1<<40) - 1<<39))
	case 3:
		return json.Number(fmt.Sprintf("%.3f", r.Float64()*1000))
	case 4, 5:
		return randomString(r)
	case 6:
		n := r.IntN(4)
		a := make([]any, n)
		for i := range a {
			a[i] = randomJSON(r, depth-1)
		}
		return a
	default:
		return randomObject(r, depth-1, 4)
	}
}

var keyPool = []string{"leadId", "lead_id", "campaignId", "message", "messagePreview", "reply", "sequenceStep", "acceptedAt",
	"newStatus", "credits_used", "total_leads_found", "x", "custom_score", "ünïcode", "a\"quote", "timestamp", "id", "skills",
	"first_name", "connections", "employees", "title", "school", "duration"}

func randomString(r *rand.Rand) string {
	parts := []string{"plain", "Zoë", "山田", "🚀", "line\nbreak", `"q"`, `back\slash`, "tab\t", "2024-02-24T10:30:00Z", "42", "", "\u2028"}
	var sb strings.Builder
	for range 1 + r.IntN(3) {
		sb.WriteString(parts[r.IntN(len(parts))])
	}
	return sb.String()
}

func randomObject(r *rand.Rand, depth, maxKeys int) map[string]any {
	o := map[string]any{}
	for range r.IntN(maxKeys + 1) {
		o[keyPool[r.IntN(len(keyPool))]] = randomJSON(r, depth)
	}
	return o
}

// randomEvent returns an event with random data; about half carry a leads array whose elements (mostly
// objects) have random experience, education and skills arrays.
func randomEvent(r *rand.Rand, i int) map[string]any {
	types := append(KnownEventTypes(), "never.seen.before")
	ev := map[string]any{
		"eventId":     fmt.Sprintf("evt_%d", i),
		"eventType":   types[r.IntN(len(types))],
		"timestamp":   []any{"2024-02-24T10:30:00.000Z", "2024-02-24T10:30:00+02:00", "garbage", nil, json.Number("1708770600")}[r.IntN(5)],
		"workspaceId": "ws_1",
		"data":        randomObject(r, 3, 6),
	}
	if r.IntN(3) == 0 {
		ev["unexpectedTopLevel"] = randomJSON(r, 2)
	}
	if r.IntN(2) == 0 {
		var leads []any
		for range r.IntN(5) {
			if r.IntN(6) == 0 {
				leads = append(leads, randomJSON(r, 1))
				continue
			}
			lead := randomObject(r, 2, 5)
			for _, k := range []string{"experience", "education", "skills"} {
				if r.IntN(3) > 0 {
					var arr []any
					for range r.IntN(4) {
						if k == "skills" {
							arr = append(arr, randomString(r))
						} else {
							arr = append(arr, randomObject(r, 1, 3))
						}
					}
					lead[k] = arr
				}
			}
			leads = append(leads, lead)
		}
		ev["data"].(map[string]any)["leads"] = leads
	}
	return ev
}

func decode(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("output JSON column does not parse: %v: %.200s", err, s)
	}
	return v
}

// normalize makes numbers comparable whatever their spelling (1e3 vs 1000).
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
	}
	return v
}

func readRows(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := ReadParquetJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var row map[string]any
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		if err := d.Decode(&row); err != nil {
			t.Fatal(err)
		}
		out = append(out, row)
	}
	return out
}

// TestRoundTripKeepsEveryValue writes random events and checks that nothing is lost: every event's data
// (less its leads array) and unknown top-level keys come back equal from the JSON columns, every lead (less
// its experience and education arrays), experience and education element comes back from its own row (its
// JSON column and the typed columns that hold a key as sent, checkRest), and the row counts equal the array
// lengths. Together the rows hold the whole input.
func TestRoundTripKeepsEveryValue(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	var buf bytes.Buffer
	var events []map[string]any
	for i := range 400 {
		ev := randomEvent(r, i)
		events = append(events, ev)
		line, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(append(line, '\n'))
	}
	os.WriteFile(in, buf.Bytes(), 0o644)
	res, err := Files(context.Background(), []string{in}, filepath.Join(dir, "out"), Options{ChunkBytes: 4 << 10, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts.Quarantined != 0 || res.Counts.Events != int64(len(events)) {
		t.Fatalf("counts %+v for %d valid events", res.Counts, len(events))
	}
	evRows := readRows(t, res.Table(TableEvents).Path)
	leadRows := readRows(t, res.Table(TableLeads).Path)
	children := map[string][]map[string]any{
		"experience": readRows(t, res.Table(TableExperience).Path),
		"education":  readRows(t, res.Table(TableEducation).Path),
	}
	var wantLeads int
	wantChildren := map[string][]any{}
	li := 0
	for i, ev := range events {
		row := evRows[i] // output keeps input order
		if row["event_id"] != ev["eventId"] || fmt.Sprint(row["source_line"]) != fmt.Sprint(i+1) {
			t.Fatalf("row %d is %v from line %v, want %v from line %d", i, row["event_id"], row["source_line"], ev["eventId"], i+1)
		}
		data := normalize(decode(t, row["data"].(string)))
		if want := normalize(without(roundTrip(t, ev["data"]), "leads")); !reflect.DeepEqual(data, want) {
			t.Fatalf("event %v: data column\n got %v\nwant %v", ev["eventId"], data, want)
		}
		extra := map[string]any{}
		for k, v := range ev {
			if k == "unexpectedTopLevel" || (k == "timestamp" && v == "garbage") {
				extra[k] = v
			}
		}
		if len(extra) > 0 {
			got := normalize(decode(t, row["extra"].(string)))
			if want := normalize(roundTrip(t, extra)); !reflect.DeepEqual(got, want) {
				t.Fatalf("event %v: extra column\n got %v\nwant %v", ev["eventId"], got, want)
			}
		} else if row["extra"] != nil {
			t.Fatalf("event %v: unexpected extra %v", ev["eventId"], row["extra"])
		}
		leads, _ := ev["data"].(map[string]any)["leads"].([]any)
		for j, lead := range leads {
			lr := leadRows[li]
			li++
			wantLeads++
			if lr["event_id"] != ev["eventId"] || fmt.Sprint(lr["lead_index"]) != fmt.Sprint(j) {
				t.Fatalf("lead row %v/%v, want %v/%d", lr["event_id"], lr["lead_index"], ev["eventId"], j)
			}
			checkRest(t, fmt.Sprintf("lead %v/%d", ev["eventId"], j), lr, lr["lead"], without(roundTrip(t, lead), "experience", "education"), leadColumn)
			lo, _ := lead.(map[string]any)
			for _, kind := range []string{"experience", "education"} {
				arr, _ := lo[kind].([]any)
				wantChildren[kind] = append(wantChildren[kind], arr...)
			}
		}
	}
	if len(leadRows) != wantLeads {
		t.Fatalf("%d lead rows, want %d", len(leadRows), wantLeads)
	}
	for kind, rows := range children {
		if len(rows) != len(wantChildren[kind]) {
			t.Fatalf("%d %s rows, want %d", len(rows), kind, len(wantChildren[kind]))
		}
		c := map[string]*childTable{"experience": experienceTable, "education": educationTable}[kind]
		for i, row := range rows {
			checkRest(t, fmt.Sprintf("%s row %d", kind, i), row, row["element"], roundTrip(t, wantChildren[kind][i]), func(k string) string {
				if col, ok := c.fields[k]; ok {
					return tableDefs[c.table].columns[col].name
				}
				return ""
			})
		}
	}
}

// checkRest checks that a row's JSON column (rest) and typed columns together hold the object sent (want) as
// sent: every key is in rest with its value, or else column(key) names a typed column that holds the value
// exactly, as the same JSON type (a string, an integer, a list of strings); and rest has no key not sent.
// A value that is not an object must be in rest whole.
func checkRest(t *testing.T, what string, row map[string]any, rest any, want any, column func(string) string) {
	t.Helper()
	s, _ := rest.(string)
	got := normalize(decode(t, s))
	wantObj, isObj := want.(map[string]any)
	if !isObj {
		if w := normalize(want); !reflect.DeepEqual(got, w) {
			t.Fatalf("%s: JSON column\n got %v\nwant %v", what, got, w)
		}
		return
	}
	gotObj, ok := got.(map[string]any)
	if !ok {
		t.Fatalf("%s: JSON column %v is not an object", what, got)
	}
	for k := range gotObj {
		if _, sent := wantObj[k]; !sent {
			t.Fatalf("%s: JSON column has key %q that was not sent", what, k)
		}
	}
	for k, v := range wantObj {
		if g, ok := gotObj[k]; ok {
			if !reflect.DeepEqual(g, normalize(v)) {
				t.Fatalf("%s: key %q is %v in the JSON column, sent %v", what, k, g, v)
			}
			continue
		}
		col := column(k)
		if col == "" {
			t.Fatalf("%s: key %q (%v) is in no column", what, k, v)
		}
		if !sameTyped(v, row[col]) {
			t.Fatalf("%s: key %q left out of the JSON column, but column %s holds %#v, sent %#v", what, k, col, row[col], v)
		}
	}
}

// sameTyped reports whether a typed column's value (as ReadParquetJSON gives it) is the value sent, as the
// same JSON type.
func sameTyped(sent, stored any) bool {
	switch v := sent.(type) {
	case string:
		return stored == v
	case json.Number:
		n, ok := stored.(json.Number)
		return ok && n.String() == v.String()
	case []any:
		s, ok := stored.([]any)
		if !ok || len(s) != len(v) {
			return false
		}
		for i := range v {
			if str, isStr := v[i].(string); !isStr || s[i] != str {
				return false
			}
		}
		return true
	}
	return false
}

// leadColumn names the leads column that the lead key k fills, or "" for none.
func leadColumn(k string) string {
	switch k {
	case "id", "leadId", "lead_id":
		return leadsColumns[ldLeadID].name
	case "skills":
		return leadsColumns[ldSkills].name
	}
	if col, ok := leadText[k]; ok {
		return leadsColumns[col].name
	}
	if col, ok := leadInt[k]; ok {
		return leadsColumns[col].name
	}
	return ""
}

// without returns a copy of an object without the named keys whose values are arrays: those are rows of
// another table.
func without(v any, keys ...string) any {
	o, ok := v.(map[string]any)
	if !ok {
		return v
	}
	c := map[string]any{}
	for k, x := range o {
		if _, isArr := x.([]any); isArr && slices.Contains(keys, k) {
			continue
		}
		c[k] = x
	}
	return c
}

func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, string(b))
}

// FuzzFlatten feeds arbitrary bytes between two good events: nothing may panic, and both good events must
// still come out.
func FuzzFlatten(f *testing.F) {
	seeds, _ := os.ReadFile("testdata/all-events.ndjson")
	for line := range bytes.Lines(seeds) {
		f.Add(line)
	}
	env, _ := os.ReadFile("testdata/envelopes.ndjson")
	for line := range bytes.Lines(env) {
		f.Add(line)
	}
	f.Add([]byte(`{"quarantine":{"reason":"x"},"line":"{\"quarantine\":{},\"line\":\"loop\"}"}`))
	f.Add([]byte(`{"v":1,"received_at":"x","payload":[1]}`))
	const before = `{"eventId":"evt_before","eventType":"message.sent","data":{"leads":[{"experience":[{}]}]}}`
	const after = `{"eventId":"evt_after","eventType":"lead.updated","data":{}}`
	fl := newFlattener(new(poolAllocator))
	f.Fuzz(func(t *testing.T, in []byte) {
		data := append(append([]byte(before+"\n"), in...), "\n"+after+"\n"...)
		r := fl.process(&chunk{data: data, file: "fuzz", firstLine: 1})
		defer func() {
			for _, rec := range r.records {
				rec.Release()
			}
		}()
		ids := r.records[0].Column(evEventID).String()
		if !strings.Contains(ids, "evt_before") || !strings.Contains(ids, "evt_after") {
			t.Fatalf("lost a good event around %q: %s", in, ids)
		}
		for i, rec := range r.records {
			if err := rec.Schema().Equal(tableDefs[i].schema); !err {
				t.Fatalf("schema changed")
			}
		}
	})
}
