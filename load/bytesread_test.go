package load_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"sendpilot-loader/load"
	"sendpilot-loader/load/duckdb"
)

// bytesPerRow is what reading reports a merge read for each row of a batch's table.
const bytesPerRow = 1000

// reading stands for a warehouse that reports what its merges read, as BigQuery does: real DuckDB stores the
// rows, and each load's result carries, for every table with rows in the batch, the bytes its merge job read
// (BigQuery's statistics.query.totalBytesProcessed,
// https://cloud.google.com/bigquery/docs/reference/rest/v2/Job#JobStatistics2), here bytesPerRow per row so
// that sums can be checked.
type reading struct{ load.Warehouse }

func (r reading) Load(ctx context.Context, b load.Batch) (load.LoadResult, error) {
	res, err := r.Warehouse.Load(ctx, b)
	if err != nil {
		return res, err
	}
	res.BytesRead = map[string]int64{}
	for t, n := range b.Rows {
		if n > 0 {
			res.BytesRead[t] = bytesPerRow * n
		}
	}
	return res, nil
}

// savedManifest reads a batch's manifest as it is on disk.
func savedManifest(t *testing.T, dataDir, id string) (load.Manifest, map[string]json.RawMessage) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "state", "batches", id, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m load.Manifest
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	return m, fields
}

// counterByTable returns the value of each table's series of a counter with a table label.
func counterByTable(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "table" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// The bytes a warehouse says its merges read are kept in the batch's manifest and added to the bytes-read
// counter per table, batch after batch.
func TestBytesReadAreRecordedAndCounted(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	l := e.loaderWith(t, func() load.Warehouse { return reading{duckdb.New(e.dbPath)} }, reg)
	// Each extractor event has two leads with one experience and one education entry each.
	want := map[string]int64{"events": 2 * bytesPerRow, "leads": 4 * bytesPerRow, "experience": 4 * bytesPerRow, "education": 4 * bytesPerRow}
	for i, ids := range [][]string{{"evt_r1", "evt_r2"}, {"evt_r3", "evt_r4"}} {
		writeSegment(t, e.dataDir, uint64(i+1), event(ids[0]), event(ids[1]))
		rep, err := l.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Batches) != 1 {
			t.Fatalf("run %d finished %d batches, want 1", i, len(rep.Batches))
		}
		m, _ := savedManifest(t, e.dataDir, rep.Batches[0].ID)
		if m.Step != load.StepArchived || fmt.Sprint(m.BytesRead) != fmt.Sprint(want) {
			t.Errorf("run %d: manifest step %s, bytes_read %v, want %v", i, m.Step, m.BytesRead, want)
		}
		got := counterByTable(t, reg, "sendpilot_load_warehouse_bytes_read_total")
		for table, n := range want {
			if got[table] != float64(n*int64(i+1)) {
				t.Errorf("run %d: bytes read counter for %s = %v, want %d", i, table, got[table], n*int64(i+1))
			}
		}
	}
}

// DuckDB cannot say what a statement read: its manifests carry no bytes_read, and the counter's series (there
// for every table, so that dashboards find them) stay at 0.
func TestBytesReadAbsentWhenTheWarehouseCannotTell(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	l := e.loaderWith(t, func() load.Warehouse { return duckdb.New(e.dbPath) }, reg)
	writeSegment(t, e.dataDir, 1, event("evt_d1"))
	rep, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, fields := savedManifest(t, e.dataDir, rep.Batches[0].ID)
	if _, ok := fields["bytes_read"]; ok || m.Step != load.StepArchived || m.Inserted["events"] != 1 {
		t.Errorf("manifest %+v (bytes_read present: %v)", m, ok)
	}
	got := counterByTable(t, reg, "sendpilot_load_warehouse_bytes_read_total")
	if fmt.Sprint(got) != "map[education:0 events:0 experience:0 leads:0]" {
		t.Errorf("bytes read counter = %v, want a 0 series per table", got)
	}
}

// A batch the warehouse refused is loaded in parts; the manifest and the counter get the parts' bytes summed.
func TestBytesReadOfAnIsolatedBatchAreSummed(t *testing.T) {
	e := newEnv(t)
	var lines []string
	for i := range 40 {
		lines = append(lines, messageEvent(fmt.Sprintf("evt_part_%02d", i)))
	}
	lines = append(lines[:13], append([]string{messageEvent("evt_poison")}, lines[13:]...)...)
	writeSegment(t, e.dataDir, 1, lines...)
	var loads atomic.Int64
	reg := prometheus.NewRegistry()
	l := e.loaderWith(t, func() load.Warehouse {
		return refusing{Warehouse: reading{duckdb.New(e.dbPath)}, poison: []string{"evt_poison"}, loads: &loads}
	}, reg)
	rep, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, _ := savedManifest(t, e.dataDir, rep.Batches[0].ID)
	if m.Refused != 1 || m.BytesRead["events"] != 40*bytesPerRow || len(m.BytesRead) != 1 {
		t.Errorf("manifest refused %d, bytes_read %v, want events=%d", m.Refused, m.BytesRead, 40*bytesPerRow)
	}
	if got := counterByTable(t, reg, "sendpilot_load_warehouse_bytes_read_total")["events"]; got != 40*bytesPerRow {
		t.Errorf("bytes read counter for events = %v, want %d", got, 40*bytesPerRow)
	}
}
