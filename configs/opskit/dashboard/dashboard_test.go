package dashboard

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

var update = flag.Bool("update", false, "rewrite configs/grafana/sendpilot-loader.json from the generator")

// committed is the dashboard file operators import.
var committed = filepath.Join("..", "..", "grafana", "sendpilot-loader.json")

// TestCommittedDashboardIsGenerated fails when the JSON in configs/grafana differs from the generator's output,
// so the file is never edited by hand (regenerate with go test ./dashboard -update, or cmd/gendashboard).
func TestCommittedDashboardIsGenerated(t *testing.T) {
	want, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(committed, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the generator's output; run `go run ./cmd/gendashboard ../grafana/sendpilot-loader.json` in configs/opskit", committed)
	}
}

// TestCommittedDashboardDecodes reads the committed JSON back into the SDK's typed model, as Grafana's schema
// has it, and checks what an operator relies on: unique panel IDs, every panel with at least one Prometheus
// query on the dashboard's data-source variable, every query filtered by the instance variable, and every
// section the dashboard promises.
func TestCommittedDashboardDecodes(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	raw, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard.Dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("decode %s: %v", committed, err)
	}
	if d.Uid == nil || *d.Uid != UID {
		t.Errorf("uid = %v, want %q", d.Uid, UID)
	}
	ids := map[uint32]bool{}
	titles := map[string]bool{}
	queries := 0
	for i, p := range d.Panels {
		if r := p.RowPanel; r != nil {
			if ids[r.Id] {
				t.Errorf("row %d: duplicate id %d", i, r.Id)
			}
			ids[r.Id] = true
			continue
		}
		panel := p.Panel
		if panel == nil || panel.Id == nil || panel.Title == nil {
			t.Fatalf("panel %d: no id or title: %+v", i, p)
		}
		if ids[*panel.Id] {
			t.Errorf("panel %q: duplicate id %d", *panel.Title, *panel.Id)
		}
		ids[*panel.Id] = true
		titles[*panel.Title] = true
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", *panel.Title)
		}
		for _, target := range panel.Targets {
			q, ok := target.(*prometheus.Dataquery)
			if !ok {
				t.Errorf("panel %q: query %T is not a Prometheus query", *panel.Title, target)
				continue
			}
			queries++
			if q.Datasource == nil || q.Datasource.Uid == nil || *q.Datasource.Uid != "${datasource}" {
				t.Errorf("panel %q: query %q does not use the data-source variable", *panel.Title, q.Expr)
			}
			if !strings.Contains(q.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: query %q ignores the instance variable", *panel.Title, q.Expr)
			}
		}
	}
	for _, want := range []string{"Deliveries by outcome", "Acknowledgement latency", "fsync latency", "Group-commit size",
		"Buffer bytes", "Oldest pending event", "Load runs by outcome", "Rows loaded per table", "Load run duration",
		"Load lag", "Paused and refused", "Loads paused", "Refused events (24 h)"} {
		if !titles[want] {
			t.Errorf("no panel %q", want)
		}
	}
	if queries < 20 {
		t.Errorf("%d queries decoded, want at least 20", queries)
	}
}
