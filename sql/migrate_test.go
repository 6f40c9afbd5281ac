package sql_test

import (
	"reflect"
	"strings"
	"testing"

	sqlfiles "sendpilot-loader/sql"
)

// The current schema of each dialect is its newest recorded version: a change to tables.sql must be recorded
// as a new version, so that the next release's upgrade tests start from this one.
func TestTablesAreTheNewestVersion(t *testing.T) {
	for _, dialect := range []string{"duckdb", "bigquery"} {
		v, err := sqlfiles.Version(dialect)
		if err != nil {
			t.Fatal(err)
		}
		current, err := sqlfiles.Tables(dialect + "/tables.sql")
		if err != nil {
			t.Fatal(err)
		}
		recorded, err := sqlfiles.Tables(sqlfiles.VersionPath(dialect, v))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(current, recorded) {
			t.Errorf("%s/tables.sql differs from its newest recorded version %d: copy it to %s",
				dialect, v, sqlfiles.VersionPath(dialect, v+1))
		}
	}
}

func TestDiff(t *testing.T) {
	key := sqlfiles.Column{Name: "event_id", Type: "VARCHAR", NotNull: true}
	msg := sqlfiles.Column{Name: "message", Type: "VARCHAR"}
	tests := []struct {
		name       string
		want, have []sqlfiles.Column
		add, relax []string
		problems   []string // a substring of each problem, in order
	}{
		{name: "same", want: []sqlfiles.Column{key, msg}, have: []sqlfiles.Column{key, msg}},
		{name: "other order", want: []sqlfiles.Column{key, msg}, have: []sqlfiles.Column{msg, key}},
		{name: "case of names and types", want: []sqlfiles.Column{msg}, have: []sqlfiles.Column{{Name: "Message", Type: "varchar"}}},
		{name: "nullable column missing", want: []sqlfiles.Column{key, msg, {Name: "note", Type: "JSON"}}, have: []sqlfiles.Column{key},
			add: []string{"message", "note"}},
		{name: "not null column missing", want: []sqlfiles.Column{key, msg}, have: []sqlfiles.Column{msg},
			problems: []string{"events.event_id is missing and this release declares it NOT NULL"}},
		{name: "type changed", want: []sqlfiles.Column{key, msg}, have: []sqlfiles.Column{key, {Name: "message", Type: "BIGINT"}},
			problems: []string{"events.message is BIGINT in the warehouse but this release writes VARCHAR: copy the column aside if you need it, then run ALTER TABLE events DROP COLUMN message"}},
		{name: "column the release no longer has", want: []sqlfiles.Column{key}, have: []sqlfiles.Column{key, msg},
			problems: []string{"events.message is in the warehouse but not in this release's schema"}},
		{name: "warehouse stricter", want: []sqlfiles.Column{key, msg}, have: []sqlfiles.Column{key, {Name: "message", Type: "VARCHAR", NotNull: true}},
			relax: []string{"message"}},
		{name: "release stricter", want: []sqlfiles.Column{key}, have: []sqlfiles.Column{{Name: "event_id", Type: "VARCHAR"}},
			problems: []string{"events.event_id allows NULL in the warehouse but this release declares it NOT NULL"}},
	}
	names := func(cs []sqlfiles.Column) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := sqlfiles.Diff("events", tc.want, tc.have)
			if got := names(m.Add); !reflect.DeepEqual(got, tc.add) {
				t.Errorf("add %v, want %v", got, tc.add)
			}
			if got := names(m.Relax); !reflect.DeepEqual(got, tc.relax) {
				t.Errorf("relax %v, want %v", got, tc.relax)
			}
			if len(m.Problems) != len(tc.problems) {
				t.Fatalf("problems %q, want %d", m.Problems, len(tc.problems))
			}
			for i, p := range tc.problems {
				if !strings.Contains(m.Problems[i], p) {
					t.Errorf("problem %q lacks %q", m.Problems[i], p)
				}
			}
		})
	}
}
