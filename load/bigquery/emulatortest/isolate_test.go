package emulatortest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/option"

	"sendpilot-loader/extract/buffer"
	"sendpilot-loader/load"
)

// One poison event among 1,000 good ones on the BigQuery code path: the emulator stores anything, so the fault
// proxy refuses any load job whose file holds the poison event, as BigQuery refuses a load job over a value it
// cannot read. The loader must isolate that one event with BigQuery's error and load the rest in the same run.
func TestOnePoisonEventIsIsolatedOnBigQuery(t *testing.T) {
	direct, proxy, w := behindProxy(t, http.StatusInternalServerError)
	proxy.refuseRows = []byte("xpoisonx")
	var lines []string
	for i := range 1000 {
		lines = append(lines, envelopeLine(fmt.Sprintf("evt_good_%04d", i)))
		if i == 321 {
			lines = append(lines, envelopeLine("evt_xpoisonx"))
		}
	}
	m := loadOnce(t, w, lines...)
	if m.Step != load.StepArchived || m.Refused != 1 {
		t.Fatalf("batch %+v", m)
	}
	q, _ := os.ReadFile(m.RefusedFile)
	if !bytes.Contains(q, []byte("evt_xpoisonx")) || !bytes.Contains(q, []byte("Error while reading data")) || bytes.Count(q, []byte("\n")) != 1 {
		t.Fatalf("refused file: %s", q)
	}
	if got := countAll(t, direct); got != "1000" {
		t.Fatalf("events stored: %s, want 1000", got)
	}
}

// loadOnce runs one load of lines into w, within five minutes, and returns the manifest of its one batch.
func loadOnce(t *testing.T, w load.Warehouse, lines ...string) *load.Manifest {
	t.Helper()
	l, _ := loaderOver(t, w, nil, lines...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := l.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return rep.Batches[0]
}

// loaderOver writes lines as the one sealed segment of a new data directory and returns a loader that loads
// it into w (one attempt per run), with its metrics on reg (nil for none), and the data directory.
func loaderOver(t *testing.T, w load.Warehouse, reg prometheus.Registerer, lines ...string) (*load.Loader, string) {
	t.Helper()
	dataDir := t.TempDir()
	bufDir := filepath.Join(dataDir, "buffer")
	os.MkdirAll(bufDir, 0o755)
	if err := os.WriteFile(filepath.Join(bufDir, "0000000001.ndjson"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := load.New(load.Options{
		DataDir:    dataDir,
		Buffer:     buffer.OpenReader(bufDir, buffer.Options{ArchiveDir: filepath.Join(dataDir, "archive")}),
		Warehouse:  func() (load.Warehouse, error) { return nopClose{w}, nil },
		Attempts:   1,
		Backoff:    time.Millisecond,
		Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l, dataDir
}

// nopClose keeps the loader from closing the shared test warehouse at the end of its run.
type nopClose struct{ load.Warehouse }

func (nopClose) Close() error { return nil }

func envelopeLine(id string) string {
	return fmt.Sprintf(`{"v":1,"received_at":"2026-01-01T00:00:00Z","signature":"valid","event_id":%q,"payload":{"eventId":%q,"eventType":"message.sent","timestamp":"2024-02-24T10:30:00Z","data":{"message":"hi"}}}`, id, id)
}

func countAll(t *testing.T, direct []option.ClientOption) string {
	t.Helper()
	return fmt.Sprint(query(t, direct, "SELECT COUNT(*) FROM sendpilot.events")[0])
}

// A merge that runs out of memory is the batch being too big for one job, not bad data and not a cause for
// pausing: BigQuery answers such a job with resourcesExceeded "The query could not be executed in the
// allotted memory" (https://cloud.google.com/bigquery/docs/error-messages#resourcesexceeded), which the fault
// proxy imitates for the batch's first merge. The loader loads the batch in halves, and every event is
// stored, none refused, in the same run.
func TestMergeOutOfMemoryIsSplit(t *testing.T) {
	direct, proxy, w := behindProxy(t, http.StatusInternalServerError)
	proxy.failQueries(jobFault{match: "MERGE", times: 1, status: 400, reason: "resourcesExceeded",
		message: "Resources exceeded during query execution: The query could not be executed in the allotted memory. Peak usage: 160% of limit."})
	var lines []string
	for i := range 200 {
		lines = append(lines, envelopeLine(fmt.Sprintf("evt_big_%04d", i)))
	}
	if m := loadOnce(t, w, lines...); m.Step != load.StepArchived || m.Refused != 0 {
		t.Fatalf("batch %+v, want it archived with nothing refused", m)
	}
	if proxy.faultsLeft() != 0 {
		t.Fatal("the merge fault was never injected")
	}
	if got := countAll(t, direct); got != "200" {
		t.Fatalf("events stored: %s, want 200", got)
	}
}
