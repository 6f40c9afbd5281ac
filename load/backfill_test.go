package load_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sendpilot-loader/load"
	"sendpilot-loader/load/duckdb"
	"sendpilot-loader/transform"
)

// waitForNext is a warehouse whose first load waits until the backfill reports reading past the first batch,
// that is until the next batch's transform runs: a backfill that transforms only after each load never gets
// there, and the load gives up.
type waitForNext struct {
	load.Warehouse
	first *sync.Once
	next  <-chan struct{}
}

func (w waitForNext) Load(ctx context.Context, b load.Batch) (load.LoadResult, error) {
	var err error
	w.first.Do(func() {
		select {
		case <-w.next:
		case <-time.After(20 * time.Second):
			err = errors.New("the next batch was not transformed while this one loaded")
		}
	})
	if err != nil {
		return load.LoadResult{}, err
	}
	return w.Warehouse.Load(ctx, b)
}

// A backfill transforms the next batch while the current one loads, and still loads every event once.
func TestBackfillTransformsWhileLoading(t *testing.T) {
	e := newEnv(t)
	var lines []string
	for i := range 200 {
		id := fmt.Sprintf("evt_%03d", i)
		lines = append(lines, fmt.Sprintf(`{"eventId":%q,"eventType":"message.sent","timestamp":"2024-02-24T10:30:00Z","data":{"message":"%s"}}`, id, strings.Repeat("m", 100)))
	}
	in := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const batchBytes = 8 << 10
	next := make(chan struct{})
	var signal sync.Once
	// One Once for every warehouse the backfill opens: only the very first load waits.
	first := &sync.Once{}
	l, err := load.New(load.Options{
		DataDir:       e.dataDir,
		Buffer:        e.buffer(),
		MaxBatchBytes: batchBytes,
		Warehouse: func() (load.Warehouse, error) {
			return waitForNext{duckdb.New(e.dbPath), first, next}, nil
		},
		Attempts: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The first part ends at the first line end at or after batchBytes: past it, the next batch is being read.
	lineLen := len(lines[0]) + 1
	firstPart := int64((batchBytes + lineLen - 1) / lineLen * lineLen)
	rep, err := l.Backfill(context.Background(), load.BackfillOptions{
		Files:     []string{in},
		PartBytes: batchBytes,
		Progress: func(done, total int64, _ transform.Counts) {
			if done > firstPart {
				signal.Do(func() { close(next) })
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Parts < 3 {
		t.Fatalf("%d parts: the input should make several batches", rep.Parts)
	}
	if got, want := e.counts(t), "events=200 leads=0 experience=0 education=0"; got != want {
		t.Fatalf("%s, want %s", got, want)
	}
}
