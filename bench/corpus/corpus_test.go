package corpus

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
)

// lines returns the first n lines of a generator, each ending in a newline, and the rows they should produce.
func lines(g *Generator, n int) ([]byte, Stats) {
	var out []byte
	var total Stats
	for range n {
		var st Stats
		out, st = g.Next(out)
		out = append(out, '\n')
		total.add(st)
	}
	return out, total
}

// TestDefaultShapeUnchanged pins the default shape's bytes: figures measured on the bench corpus are compared
// across versions, so a change to the generator must leave the default output as it is (add a shape instead).
func TestDefaultShapeUnchanged(t *testing.T) {
	tests := []struct {
		seed     uint64
		envelope bool
		bytes    int
		stats    Stats
		sha256   string
	}{
		{1, false, 8515298, Stats{400, 4346, 10785, 5445}, "5b79bf289438d419011d766eafabb41be00e4e7e5c85e5771d3ed8330322767b"},
		{7, false, 7618852, Stats{400, 3996, 9549, 4838}, "51002d74597632ffb41e576cbdca9e4fd95c2911b8ed87357859ca5f6ab18b16"},
		{1, true, 7901105, Stats{400, 4088, 9768, 4934}, "6207a0bacb529602effa31465ba35450f354c8cfe2a4f2c63b99f9d486c8aa75"},
	}
	for _, tt := range tests {
		for _, g := range []*Generator{New(tt.seed, tt.envelope), NewShape(tt.seed, tt.envelope, ShapeDefault)} {
			out, st := lines(g, 400)
			sum := sha256.Sum256(out)
			if len(out) != tt.bytes || st != tt.stats || hex.EncodeToString(sum[:]) != tt.sha256 {
				t.Errorf("seed %d envelope %v: %d bytes, %+v, sha256 %x; want %d bytes, %+v, sha256 %s",
					tt.seed, tt.envelope, len(out), st, sum, tt.bytes, tt.stats, tt.sha256)
			}
		}
	}
}

// event is the part of a generated event the shape tests look at.
type event struct {
	EventType string `json:"eventType"`
	Data      struct {
		Leads []json.RawMessage `json:"leads"`
	} `json:"data"`
}

// census parses n events of a shape and counts event names and the leads of each job.
func census(t *testing.T, shape Shape, n int) (names map[string]int, jobLeads []int, st Stats) {
	t.Helper()
	out, st := lines(NewShape(1, false, shape), n)
	names = map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: line is not JSON: %v", shape, err)
		}
		names[e.EventType]++
		if e.EventType == "lead_extractor.job.completed" || e.EventType == "lead_database.search.completed" {
			jobLeads = append(jobLeads, len(e.Data.Leads))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names, jobLeads, st
}

func TestOldNamesShape(t *testing.T) {
	names, jobs, st := census(t, ShapeOldNames, 2000)
	old := map[string]bool{"message.sent": true, "message.received": true, "connection.sent": true,
		"connection.accepted": true, "lead.status.changed": true}
	for name := range names {
		if !old[name] {
			t.Errorf("event name %q is not one of the older docs' five outreach names", name)
		}
	}
	if len(names) != len(old) {
		t.Errorf("got names %v, want all of %v", names, old)
	}
	if len(jobs) != 0 || st.Leads != 0 {
		t.Errorf("got %d jobs with %d leads, want none", len(jobs), st.Leads)
	}
}

func TestWideLeadsShape(t *testing.T) {
	_, base, baseStats := census(t, ShapeDefault, 1000)
	_, wide, wideStats := census(t, ShapeWideLeads, 1000)
	if len(wide) == 0 || len(base) == 0 {
		t.Fatalf("no jobs: %d default, %d wide", len(base), len(wide))
	}
	avg := func(xs []int) float64 {
		s := 0
		for _, x := range xs {
			s += x
		}
		return float64(s) / float64(len(xs))
	}
	for _, n := range wide {
		if n < 20 || n > 400 || n%2 != 0 {
			t.Fatalf("a wide job has %d leads, want an even count in 20–400", n)
		}
	}
	// Job sizes are drawn from the same distribution, doubled; the streams part after the first job.
	if r := avg(wide) / avg(base); r < 1.75 || r > 2.25 {
		t.Errorf("leads per job: %.1f wide against %.1f default (%.2f×), want 2×", avg(wide), avg(base), r)
	}
	if 2*wideStats.Leads < 3*baseStats.Leads {
		t.Errorf("wide shape has %d leads, default %d; want about twice as many", wideStats.Leads, baseStats.Leads)
	}
}

func TestParseShape(t *testing.T) {
	for _, sh := range Shapes {
		if got, err := ParseShape(string(sh)); err != nil || got != sh {
			t.Errorf("ParseShape(%q) = %q, %v", sh, got, err)
		}
	}
	if got, err := ParseShape(""); err != nil || got != ShapeDefault {
		t.Errorf(`ParseShape("") = %q, %v; want the default`, got, err)
	}
	if _, err := ParseShape("huge"); err == nil {
		t.Error(`ParseShape("huge") succeeded`)
	}
}
