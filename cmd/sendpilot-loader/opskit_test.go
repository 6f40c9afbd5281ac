package main

// Checks that tie the operator's kit in configs/ (alert rules, dashboard, container image) to the binary it
// is for, so that renaming a metric, a runbook section or adding a package cannot silently break it.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// repoRoot is the main module's directory (the tests run in cmd/sendpilot-loader).
var repoRoot = filepath.Join("..", "..")

var (
	alertsFile    = filepath.Join(repoRoot, "configs", "prometheus", "alerts.yaml")
	dashboardFile = filepath.Join(repoRoot, "configs", "grafana", "sendpilot-loader.json")
	dockerfile    = filepath.Join(repoRoot, "configs", "Dockerfile")
	operationsDoc = filepath.Join(repoRoot, "docs", "operations.md")
)

// ruleFile is the part of a Prometheus rule file the checks read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(raw, &rf); err != nil {
		t.Fatalf("decode %s: %v", alertsFile, err)
	}
	return rf
}

// dashboardExprs returns every PromQL string in the dashboard JSON: the panels' "expr" fields and the
// variables' "query" fields, wherever they are nested.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("decode %s: %v", dashboardFile, err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query") {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return out
}

// Every series name of this service starts with sendpilot_; names of recording rules start with sendpilot:.
var (
	metricRE   = regexp.MustCompile(`\bsendpilot_[a-z0-9_]*[a-z0-9]`)
	recordedRE = regexp.MustCompile(`\bsendpilot:[a-z0-9_:]*[a-z0-9]`)
)

// exportedFamilies scrapes url and returns each metric family's name and type from its "# TYPE" lines.
func exportedFamilies(t *testing.T, metricsURL string) map[string]string {
	t.Helper()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", metricsURL, resp.Status)
	}
	fams := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			fams[f[2]] = f[3]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return fams
}

// TestRulesAndDashboardUseExportedMetrics starts the real binary (loopback), sends one event, waits for a
// scheduled load to insert it (so that even the per-table counter has a series), scrapes /metrics, and checks
// that every sendpilot_ metric the alert rules and the dashboard query is one the server exports. A histogram
// is exported as one family, so its _bucket, _sum and _count series are checked against that family. Every
// sendpilot: name a rule or panel uses must be recorded by the rule file.
func TestRulesAndDashboardUseExportedMetrics(t *testing.T) {
	rf := readRules(t)
	recorded := map[string]bool{}
	var exprs []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			exprs = append(exprs, r.Expr)
		}
	}
	dash := dashboardExprs(t)
	if len(dash) < 20 {
		t.Fatalf("found %d queries in %s, want at least 20", len(dash), dashboardFile)
	}
	used := map[string][]string{} // metric name -> the files that use it
	for _, src := range []struct {
		file  string
		exprs []string
	}{{alertsFile, exprs}, {dashboardFile, dash}} {
		for _, e := range src.exprs {
			for _, name := range metricRE.FindAllString(e, -1) {
				if !slices.Contains(used[name], src.file) {
					used[name] = append(used[name], src.file)
				}
			}
			for _, name := range recordedRE.FindAllString(e, -1) {
				if !recorded[name] {
					t.Errorf("%s uses %s, which no rule in %s records", src.file, name, alertsFile)
				}
			}
		}
	}
	if len(used) < 10 {
		t.Fatalf("the rules and dashboard use only %d sendpilot_ metrics: %v", len(used), used)
	}

	srv := startServer(t, t.TempDir(), "--schedule", "@every 1s", "--segment-max-age", "200ms")
	defer srv.Stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(signedRequest(ctx, srv.URL, eventBody("evt_opskit_1")))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("delivery answered %s", resp.Status)
	}
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	metricsURL := "http://" + u.Host + "/metrics"
	var fams map[string]string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		fams = exportedFamilies(t, metricsURL)
		if _, ok := fams["sendpilot_load_rows_inserted_total"]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no load inserted the event within 60 s:\n%s", srv.Log())
		}
	}

	for name, files := range used {
		if _, ok := fams[name]; ok {
			continue
		}
		base, found := "", false
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok {
				base, found = b, fams[b] == "histogram"
			}
		}
		switch {
		case found:
		case base != "":
			t.Errorf("%s uses %s, but the server exports no histogram %s", strings.Join(files, " and "), name, base)
		default:
			t.Errorf("%s uses %s, which the server does not export", strings.Join(files, " and "), name)
		}
	}
}

// githubAnchor is the fragment GitHub gives a Markdown heading: lower case, punctuation other than "-" and
// "_" dropped, spaces turned into "-".
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestAlertRunbooksExist checks that every alert has a summary and a runbook_url naming a section of
// docs/operations.md that exists.
func TestAlertRunbooksExist(t *testing.T) {
	raw, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for line := range strings.Lines(string(raw)) {
		if strings.HasPrefix(line, "#") {
			anchors[githubAnchor(strings.TrimLeft(line, "#"))] = true
		}
	}
	alerts := 0
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s has no summary", r.Alert)
			}
			doc, anchor, ok := strings.Cut(r.Annotations["runbook_url"], "#")
			if !ok || doc != "docs/operations.md" || !anchors[anchor] {
				t.Errorf("alert %s: runbook_url %q is not a section of docs/operations.md", r.Alert, r.Annotations["runbook_url"])
			}
		}
	}
	if alerts < 10 {
		t.Fatalf("%s holds %d alerts, want at least 10", alertsFile, alerts)
	}
}

// TestDockerfileCopiesEveryPackageDir lists the main module's packages the binary is built from and checks that
// the Dockerfile's build stage copies a directory holding each, and go.mod and go.sum.
func TestDockerfileCopiesEveryPackageDir(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}} {{.Dir}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var dirs []string
	for line := range strings.Lines(string(out)) {
		mod, dir, _ := strings.Cut(strings.TrimSpace(line), " ")
		if mod != "sendpilot-loader" {
			continue // the standard library and other modules come from go mod download
		}
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Fatalf("package directory %s is outside the module %s", dir, root)
		}
		dirs = append(dirs, filepath.ToSlash(rel))
	}
	if len(dirs) < 5 {
		t.Fatalf("go list found only %d packages of the module: %v", len(dirs), dirs)
	}

	raw, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	var copied []string
	for line := range strings.Lines(string(raw)) {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "COPY" || strings.HasPrefix(f[1], "--from") {
			continue
		}
		for _, src := range f[1 : len(f)-1] {
			copied = append(copied, strings.TrimSuffix(strings.TrimPrefix(src, "./"), "/"))
		}
	}
	covered := func(path string) bool {
		for _, c := range copied {
			if c == "." || path == c || strings.HasPrefix(path, c+"/") {
				return true
			}
		}
		return false
	}
	for _, f := range append([]string{"go.mod", "go.sum"}, dirs...) {
		if !covered(f) {
			t.Errorf("%s does not COPY %s (copied: %v)", dockerfile, f, copied)
		}
	}
}
