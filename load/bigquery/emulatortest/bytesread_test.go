package emulatortest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sendpilot-loader/load"
	"sendpilot-loader/load/loadtest"
)

// injectedBytes are the bytes the fault proxy shows for each table's merge job; distinct per table, so that
// a figure reported for the wrong table shows.
var injectedBytes = map[string]int64{"events": 10_485_760, "leads": 2_222_222, "experience": 333_333, "education": 44_444}

// The emulator's MERGE jobs carry query statistics without bytes (it counts only the bytes of a query's result
// rows), so the warehouse reports 0 for each table with rows, not -1: the statistics are read. Through the
// proxy, which shows the bytes BigQuery would, each table gets its own merge job's figure; loading the batch
// again (a resume that finds every job done) reports the same figures, and so does a Replace batch, whose
// events figure is the replace script's.
func TestMergeBytesReadComeFromJobStatistics(t *testing.T) {
	ctx := context.Background()
	t.Run("emulator", func(t *testing.T) {
		opts, _ := emulator(t)
		w := warehouse(t, opts)
		if err := w.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := w.Load(ctx, loadtest.BatchFrom(t, "inst-0000000011-0000000011", evA, evB))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(res.BytesRead); got != "map[education:0 events:0 experience:0 leads:0]" {
			t.Errorf("bytes read = %s, want 0 for each table with rows", got)
		}
	})
	t.Run("statistics", func(t *testing.T) {
		_, proxy, w := behindProxy(t, http.StatusServiceUnavailable)
		proxy.mu.Lock()
		proxy.mergeBytes = injectedBytes
		proxy.mu.Unlock()
		b := loadtest.BatchFrom(t, "inst-0000000012-0000000012", evA, evB)
		for _, run := range []string{"first load", "load again", "replace"} {
			if run == "replace" {
				b = loadtest.BatchFrom(t, "inst-0000000013-0000000013", evA, evB)
				b.Replace = true
			}
			res, err := w.Load(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(res.BytesRead) != fmt.Sprint(injectedBytes) {
				t.Errorf("%s: bytes read = %v, want %v", run, res.BytesRead, injectedBytes)
			}
		}
	})
}

// A scheduled load into BigQuery records each table's merge bytes in the batch's manifest and counts them in
// sendpilot_load_warehouse_bytes_read_total.
func TestLoaderRecordsBigQueryBytesRead(t *testing.T) {
	_, proxy, w := behindProxy(t, http.StatusServiceUnavailable)
	proxy.mu.Lock()
	proxy.mergeBytes = injectedBytes
	proxy.mu.Unlock()
	extractor := strings.Replace(envelopeLine("evt_bytes_2"), `"eventType":"message.sent","timestamp":"2024-02-24T10:30:00Z","data":{"message":"hi"}`,
		`"eventType":"lead_extractor.job.completed","timestamp":"2024-02-25T11:00:00Z","data":{"campaign_id":"c","leads":[{"id":"x","experience":[{"title":"CEO"}],"education":[{"school":"MIT"}]}]}`, 1)
	reg := prometheus.NewRegistry()
	l, dataDir := loaderOver(t, w, reg, envelopeLine("evt_bytes_1"), extractor)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := l.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dataDir, "state", "batches", rep.Batches[0].ID, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m load.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.Step != load.StepArchived || fmt.Sprint(m.BytesRead) != fmt.Sprint(injectedBytes) {
		t.Errorf("manifest step %s, bytes_read %v, want %v", m.Step, m.BytesRead, injectedBytes)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]int64{}
	for _, mf := range mfs {
		if mf.GetName() == "sendpilot_load_warehouse_bytes_read_total" {
			for _, s := range mf.GetMetric() {
				counted[s.GetLabel()[0].GetValue()] = int64(s.GetCounter().GetValue())
			}
		}
	}
	if fmt.Sprint(counted) != fmt.Sprint(injectedBytes) {
		t.Errorf("bytes read counter = %v, want %v", counted, injectedBytes)
	}
}

// A late event (here from 2019) in batches of 2024 events makes each merge read the late event's day and the
// batch's own days, not the five years between, and it is still stored once across batches.
func TestLateEventIsMergedOnItsOwnDay(t *testing.T) {
	direct, proxy, w := behindProxy(t, http.StatusServiceUnavailable)
	ctx := context.Background()
	late := `{"eventId":"evt_late","eventType":"lead_extractor.job.completed","timestamp":"2019-06-01T08:00:00Z","data":{"campaign_id":"c","leads":[{"id":"z","experience":[{"title":"CFO"}]}]}}`
	for _, b := range []load.Batch{
		loadtest.BatchFrom(t, "inst-0000000021-0000000021", late, evA),
		loadtest.BatchFrom(t, "inst-0000000022-0000000022", evB, late),
		loadtest.BatchFrom(t, "inst-0000000022-0000000022", evB, late),
	} {
		if _, err := w.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for q, want := range map[string]string{
		"SELECT COUNT(*) FROM sendpilot.events":                                               "3",
		"SELECT COUNT(*) FROM sendpilot.events WHERE event_id = 'evt_late'":                   "1",
		"SELECT COUNT(*) FROM sendpilot.leads":                                                "3",
		"SELECT COUNT(*) FROM sendpilot.experience WHERE event_id = 'evt_late'":               "1",
		"SELECT COUNT(*) FROM sendpilot.events WHERE DATE(occurred_at) = DATE '2019-06-01'":   "1",
		"SELECT COUNT(DISTINCT event_id) FROM sendpilot.events WHERE occurred_at IS NOT NULL": "3",
	} {
		if row := query(t, direct, q); fmt.Sprint(row[0]) != want {
			t.Errorf("%s = %v, want %s", q, row, want)
		}
	}
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	merges := 0
	for _, body := range proxy.queries {
		if !strings.Contains(body, "MERGE `sendpilot.events`") {
			continue
		}
		merges++
		if !strings.Contains(body, "T.occurred_at BETWEEN TIMESTAMP '2019-06-01 00:00:00' AND TIMESTAMP '2019-06-01 23:59:59.999999' OR") ||
			strings.Contains(body, "2019-06-01 08:00:00") {
			t.Errorf("events merge does not name the late event's day alone:\n%s", body)
		}
	}
	if merges != 2 {
		t.Errorf("saw %d events merges, want 2 (the repeated batch finds its jobs done)", merges)
	}
}
