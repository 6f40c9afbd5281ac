package load_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"sendpilot-loader/load"
	"sendpilot-loader/load/duckdb"
)

// A backlog larger than a batch (what an outage leaves) drains in one run, batch after batch; with Once a
// run loads one batch, as for an external scheduler that wants short runs.
func TestBacklogDrainsInOneRun(t *testing.T) {
	for _, once := range []bool{false, true} {
		t.Run(map[bool]string{false: "drain", true: "once"}[once], func(t *testing.T) {
			e := newEnv(t)
			for seq := uint64(1); seq <= 7; seq++ {
				writeSegment(t, e.dataDir, seq, event(fmt.Sprintf("evt_%d", seq)))
			}
			var progress []int
			l, err := load.New(load.Options{
				DataDir:       e.dataDir,
				Buffer:        e.buffer(),
				Warehouse:     func() (load.Warehouse, error) { return duckdb.New(e.dbPath), nil },
				MaxBatchBytes: 1, // one segment a batch
				Backoff:       time.Millisecond,
				Once:          once,
				Progress:      func(m *load.Manifest, backlog int) { progress = append(progress, backlog) },
			})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := l.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			wantBatches, wantEvents := 7, 7
			if once {
				wantBatches, wantEvents = 1, 1
			}
			if len(rep.Batches) != wantBatches || len(progress) != wantBatches || progress[0] != 7 {
				t.Fatalf("%d batches, progress %v; want %d", len(rep.Batches), progress, wantBatches)
			}
			if got, want := e.counts(t), fmt.Sprintf("events=%d leads=%d experience=%d education=%d", wantEvents, 2*wantEvents, 2*wantEvents, 2*wantEvents); got != want {
				t.Fatalf("%s, want %s", got, want)
			}
			if got := e.pending(t); len(got) != 7-wantEvents {
				t.Fatalf("pending after the run: %v", got)
			}
		})
	}
}

// Segments sealed while a run drains wait for the next run, so a run under steady traffic ends.
func TestDrainStopsAtWhatWasPendingAtTheStart(t *testing.T) {
	e := newEnv(t)
	writeSegment(t, e.dataDir, 1, event("evt_1"))
	writeSegment(t, e.dataDir, 2, event("evt_2"))
	next := uint64(10)
	l, err := load.New(load.Options{
		DataDir:       e.dataDir,
		Buffer:        e.buffer(),
		Warehouse:     func() (load.Warehouse, error) { return duckdb.New(e.dbPath), nil },
		MaxBatchBytes: 1,
		Progress: func(*load.Manifest, int) { // a segment arrives after every batch
			writeSegment(t, e.dataDir, next, event(fmt.Sprintf("evt_%d", next)))
			next++
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := l.Run(context.Background())
	if err != nil || len(rep.Batches) != 2 {
		t.Fatalf("run: %d batches, %v; want the 2 pending at its start", len(rep.Batches), err)
	}
}

// A drain closes the warehouse after each batch, so no batch's transform runs beside DuckDB's cache (and
// under the Go heap's share lowered for it): every batch is transformed with no warehouse open, and each is
// loaded by a warehouse opened for it.
func TestDrainClosesTheWarehouseBetweenBatches(t *testing.T) {
	e := newEnv(t)
	for seq := uint64(1); seq <= 3; seq++ {
		writeSegment(t, e.dataDir, seq, event(fmt.Sprintf("evt_%d", seq)))
	}
	var open, opened int
	var transformedOpen []string
	l, err := load.New(load.Options{
		DataDir: e.dataDir,
		Buffer:  e.buffer(),
		Warehouse: func() (load.Warehouse, error) {
			opened++
			return closeCounting{duckdb.New(e.dbPath), &open}, nil
		},
		MaxBatchBytes: 1, // one segment a batch
		Backoff:       time.Millisecond,
		AfterStep: func(batch string, step load.Step) {
			if step == load.StepTransformed && open > 0 {
				transformedOpen = append(transformedOpen, batch)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Batches) != 3 {
		t.Fatalf("%d batches, want 3", len(rep.Batches))
	}
	if len(transformedOpen) > 0 || opened != 3 || open != 0 {
		t.Fatalf("batches transformed with the warehouse open: %v; warehouses opened %d, want 3; left open %d",
			transformedOpen, opened, open)
	}
}

// closeCounting counts, in open, the warehouses prepared (Ensure) and not yet closed.
type closeCounting struct {
	load.Warehouse
	open *int
}

func (w closeCounting) Ensure(ctx context.Context) error {
	*w.open++
	return w.Warehouse.Ensure(ctx)
}

func (w closeCounting) Close() error {
	if *w.open > 0 {
		*w.open--
	}
	return w.Warehouse.Close()
}
