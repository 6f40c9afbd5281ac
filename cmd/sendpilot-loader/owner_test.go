package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Two serve processes on one data directory used to lose acknowledged events: the second sealed the first's
// live segment, which the loader then archived and removed while the first kept writing into it. The second
// must refuse to start, the first must go on, and every acknowledged event must reach the warehouse.
func TestSecondServeOnOneDataDirRefusesToStart(t *testing.T) {
	dataDir := t.TempDir()
	first := startServer(t, dataDir, "--schedule", "")
	post := func(id string) {
		t.Helper()
		resp, err := http.DefaultClient.Do(signedRequest(context.Background(), first.URL, eventBody(id)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("post %s: %d", id, resp.StatusCode)
		}
	}
	post("evt_owner_1")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, binary, "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--webhook-secret", testSecret)
	second.Env = append(os.Environ(), "SENDPILOT_CONFIG=")
	out, err := second.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("second serve did not refuse to start (err %v):\n%s", err, out)
	}
	if !strings.Contains(string(out), "in use by another writer") || !strings.Contains(string(out), fmt.Sprintf("pid %d", first.Pid())) {
		t.Fatalf("second serve's message does not say who holds the directory:\n%s", out)
	}

	// A load run from outside while the first serve writes leaves its live segment alone.
	post("evt_owner_2")
	runLoadCmd(t, dataDir, "")
	post("evt_owner_3")
	first.Stop(t)
	runLoadCmd(t, dataDir, "")
	if got, want := warehouseCounts(t, dataDir), "education=0 events=3 experience=0 leads=0"; got != want {
		t.Fatalf("warehouse: %s, want %s", got, want)
	}
}

// After buffer/last-sequence is lost (or a data dir is restored from an older backup) sequence numbers start
// again; the events of the new segments must still reach the warehouse (the batch ID must not repeat, or
// DuckDB takes the batch as loaded) and no archive file may be overwritten.
func TestLostSequenceFileLosesNoEvent(t *testing.T) {
	dataDir := t.TempDir()
	for round := 1; round <= 3; round++ {
		srv := startServer(t, dataDir, "--schedule", "")
		resp, err := http.DefaultClient.Do(signedRequest(context.Background(), srv.URL, eventBody(fmt.Sprintf("evt_seq_%d", round))))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Stop(t)
		runLoadCmd(t, dataDir, "")
		if err := os.Remove(dataDir + "/buffer/last-sequence"); err != nil {
			t.Fatal(err)
		}
		// Archive retention (or an older backup) leaves no trace of the numbers used: take the files away.
		archived, _ := os.ReadDir(dataDir + "/archive")
		if len(archived) != 1 {
			t.Fatalf("round %d: %d archive files, want 1", round, len(archived))
		}
		os.MkdirAll(dataDir+"/offsite", 0o755)
		name := archived[0].Name()
		if _, err := os.Stat(dataDir + "/offsite/" + name); err == nil {
			t.Fatalf("round %d: archive name %s repeats an earlier one", round, name)
		}
		os.Rename(dataDir+"/archive/"+name, dataDir+"/offsite/"+name)
	}
	if got, want := warehouseCounts(t, dataDir), "education=0 events=3 experience=0 leads=0"; got != want {
		t.Fatalf("warehouse: %s, want %s", got, want)
	}
}
