package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sendpilot-loader/load/duckdb"
	sqlfiles "sendpilot-loader/sql"
)

// runIn runs the command in this process, with an empty stdin, and returns its exit code, stdout and stderr.
func runIn(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runWithStdin(t, "", args...)
}

// runWithStdin is runIn with the given text on stdin.
func runWithStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &environment{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	code := run(context.Background(), env, args)
	return code, out.String(), errOut.String()
}

// loadedDataDir backfills the SQL fixture into a fresh data directory with the real binary.
func loadedDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	fixture, _ := filepath.Glob("../../sql/sqltest/testdata/fixture-*.ndjson")
	out, err := exec.Command(binary, append([]string{"backfill", "--data-dir", dir}, fixture...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	return dir
}

func TestReportAndSQLCommands(t *testing.T) {
	empty := t.TempDir()
	if code, _, stderr := runIn(t, "report", "funnel", "--data-dir", empty); code != 1 || !strings.Contains(stderr, "no warehouse at") {
		t.Errorf("report before any load: exit %d, stderr %q", code, stderr)
	}
	dir := loadedDataDir(t)

	code, stdout, stderr := runIn(t, "report", "funnel", "--data-dir", dir, "--format", "csv")
	if code != 0 {
		t.Fatalf("report funnel: exit %d: %s", code, stderr)
	}
	rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if err != nil || len(rows) != 4 {
		t.Fatalf("funnel csv: %v, %d rows:\n%s", err, len(rows), stdout)
	}
	if got := strings.Join(rows[1], ","); got != "camp_a,Founders Q1 (EU),2024-03-04,4,4,3,3,2,0.75,0.5,24,15" {
		t.Errorf("first funnel row = %s", got)
	}

	code, stdout, _ = runIn(t, "report", "--list")
	reports, _ := sqlfiles.Reports()
	if code != 0 || strings.Count(stdout, "\n") != len(reports) || !strings.Contains(stdout, "lead-status  Leads per campaign") {
		t.Errorf("report --list: exit %d:\n%s", code, stdout)
	}

	if code, stdout, _ = runWithStdin(t, "SELECT count(*) AS n FROM events_latest", "sql", "--format", "json", "--data-dir", dir, "-"); code != 0 || stdout != "[\n{\"n\":43}\n]\n" {
		t.Errorf("sql from stdin: exit %d, %q", code, stdout)
	}
	if code, stdout, _ = runIn(t, "sql", "SELECT status, count(*) AS leads FROM lead_status_current GROUP BY status ORDER BY status", "--data-dir", dir); code != 0 ||
		!strings.Contains(stdout, "OPPORTUNITY") || !strings.HasSuffix(stdout, "(4 rows)\n") {
		t.Errorf("sql as table: exit %d:\n%s", code, stdout)
	}

	for _, bad := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"report", "nope", "--data-dir", dir}, 2, `no report named "nope"`},
		{[]string{"report", "funnel", "--format", "xml", "--data-dir", dir}, 2, "unknown --format"},
		{[]string{"sql", "--data-dir", dir}, 2, "give a query"},
		{[]string{"sql", "SELECT 1", "SELECT 2", "--data-dir", dir}, 2, "one quoted argument"},
		{[]string{"sql", "SELEC nothing", "--data-dir", dir}, 1, "run query"},
		{[]string{"sql", "DELETE FROM events", "--data-dir", dir}, 1, "read-only"},
	} {
		code, _, stderr := runIn(t, bad.args...)
		if code != bad.code || !strings.Contains(stderr, bad.says) {
			t.Errorf("%q: exit %d (want %d), stderr %q (want %q)", bad.args, code, bad.code, stderr, bad.says)
		}
	}
}

// While a load holds the DuckDB file, a query says it is waiting, then runs once the file is free. DuckDB
// refuses a second configuration of one file inside a process, so the holder is another process: this test
// binary, run as TestHoldWarehouse.
func TestQueryWaitsForALoad(t *testing.T) {
	dir := loadedDataDir(t)
	holder := exec.Command(os.Args[0], "-test.run=^TestHoldWarehouse$")
	holder.Env = append(os.Environ(), "SENDPILOT_TEST_HOLD="+filepath.Join(dir, "warehouse.duckdb"))
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Wait()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "held\n" {
		t.Fatalf("holder said %q, %v", line, err)
	}
	code, stdout, stderr := runIn(t, "sql", "SELECT count(*) AS n FROM events", "--data-dir", dir, "--format", "csv")
	if code != 0 || stdout != "n\n43\n" || strings.Count(stderr, "waiting for") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestHoldWarehouse opens the DuckDB file for writing for a second, as a load does, when run by
// TestQueryWaitsForALoad; otherwise it does nothing.
func TestHoldWarehouse(t *testing.T) {
	path := os.Getenv("SENDPILOT_TEST_HOLD")
	if path == "" {
		t.Skip("run by TestQueryWaitsForALoad")
	}
	db, err := duckdb.Open(context.Background(), path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("held")
	time.Sleep(time.Second)
	db.Close()
}

// sql and report print every value a warehouse holds: the hostile events of the transform's tests (invalid
// UTF-8, lone surrogates, control characters, NUL, 1e400, timestamps out of range), backfilled for real, and
// values the transform never writes but a warehouse can hold (1e400 in a JSON column, infinite floats).
func TestSQLAndReportPrintHostileValues(t *testing.T) {
	dir := t.TempDir()
	hostile := "../../transform/testdata/hostile.ndjson"
	if out, err := exec.Command(binary, "backfill", "--data-dir", dir, hostile).CombinedOutput(); err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(hostile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(string(raw), "\n")
	for _, format := range sqlfiles.Formats {
		for _, q := range []string{
			"SELECT * FROM events ORDER BY source_line",
			`SELECT '{"n":1e400,"m":[-1e999]}'::JSON AS j, 'inf'::DOUBLE AS f, 'nan'::DOUBLE AS g, 'a' || chr(0) || chr(1) AS z, [ 'inf'::DOUBLE ] AS l`,
		} {
			code, stdout, stderr := runIn(t, "sql", q, "--data-dir", dir, "--format", format)
			if code != 0 {
				t.Errorf("sql %q --format %s: exit %d: %s", q, format, code, stderr)
			}
			if format == "json" && !json.Valid([]byte(stdout)) {
				t.Errorf("sql %q --format json printed no JSON:\n%.300s", q, stdout)
			}
		}
		reports, _ := sqlfiles.Reports()
		for _, r := range reports {
			if code, _, stderr := runIn(t, "report", r.Name, "--data-dir", dir, "--format", format); code != 0 {
				t.Errorf("report %s --format %s: exit %d: %s", r.Name, format, code, stderr)
			}
		}
	}
	code, stdout, stderr := runIn(t, "sql", "SELECT count(*) AS n, count(*) FILTER (WHERE len(repairs) > 0) AS repaired FROM events", "--data-dir", dir, "--format", "csv")
	if want := fmt.Sprintf("n,repaired\n%d,", lines); code != 0 || !strings.HasPrefix(stdout, want) || strings.HasPrefix(stdout, want+"0\n") {
		t.Errorf("every hostile line loaded, some repaired: exit %d, %q (want %q…), %s", code, stdout, want, stderr)
	}
}
