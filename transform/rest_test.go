package transform

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJSONColumnsLeaveOutTypedValues pins which keys a lead's or a child element's JSON column leaves out: only
// those whose typed column holds the value exactly as sent. checkRest (the round trip) proves that nothing is
// lost; this proves that what is left out is what is meant to be.
func TestJSONColumnsLeaveOutTypedValues(t *testing.T) {
	long := strings.Repeat("é", maxTextBytes) // 2 MiB of UTF-8: its typed column is cut
	for _, tc := range []struct {
		name, lead, wantLead string
		element, wantElement string // an experience element, when set
	}{
		{name: "strings held by their columns", lead: `{"id":"l1","first_name":"Ann","headline":"CTO","x":1}`, wantLead: `{"x":1}`},
		{name: "second spelling of a filled column", lead: `{"first_name":"Ann","firstName":"Ann"}`, wantLead: `{"firstName":"Ann"}`},
		{name: "number in a text column", lead: `{"first_name":42,"phone":"+1"}`, wantLead: `{"first_name":42}`},
		{name: "object in a text column", lead: `{"company":{"name":"A"}}`, wantLead: `{"company":{"name":"A"}}`},
		{name: "null", lead: `{"email":null}`, wantLead: `{"email":null}`},
		{name: "integers as sent", lead: `{"connections":500,"followers":-7}`, wantLead: `{}`},
		{name: "integers spelled otherwise", lead: `{"connections":"500","followers":5e2,"follower_count":1.0}`, wantLead: `{"connections":"500","followers":5e2,"follower_count":1.0}`},
		{name: "skills of strings", lead: `{"skills":["Go","SQL"]}`, wantLead: `{}`},
		{name: "skills not all strings", lead: `{"skills":["Go",1]}`, wantLead: `{"skills":["Go",1]}`},
		{name: "text cut for its size", lead: `{"summary":"` + long + `"}`, wantLead: `{"summary":"` + long + `"}`},
		{name: "not an object", lead: `"just text"`, wantLead: `"just text"`},
		{name: "child arrays are rows", lead: `{"experience":[{"title":"Dev","company":"A","team":"core"}],"education":"none"}`, wantLead: `{"education":"none"}`,
			element: `{"title":"Dev","company":"A","team":"core"}`, wantElement: `{"team":"core"}`},
		{name: "child element that is not an object", lead: `{"experience":[3]}`, wantLead: `{}`, element: `3`, wantElement: `3`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.ndjson")
			line := `{"eventId":"evt_1","eventType":"lead_extractor.job.completed","timestamp":"2024-02-24T10:30:00Z","data":{"leads":[` + tc.lead + `]}}` + "\n"
			if err := os.WriteFile(in, []byte(line), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := Files(context.Background(), []string{in}, filepath.Join(dir, "out"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			leads := readRows(t, res.Table(TableLeads).Path)
			if len(leads) != 1 {
				t.Fatalf("%d lead rows", len(leads))
			}
			if got := leads[0]["lead"]; got != tc.wantLead {
				t.Errorf("lead column\n got %.200v\nwant %.200v", got, tc.wantLead)
			}
			if tc.element == "" {
				return
			}
			exp := readRows(t, res.Table(TableExperience).Path)
			if len(exp) != 1 || exp[0]["element"] != tc.wantElement {
				t.Errorf("experience rows %v, want one with element %s", exp, tc.wantElement)
			}
		})
	}
}
