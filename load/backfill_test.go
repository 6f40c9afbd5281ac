package load_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sendpilot-loader/load"
	"sendpilot-loader/load/duckdb"
	"sendpilot-loader/transform"
)

// watchTransform is a warehouse that sees how far the backfill's transform has read when each load runs.
// With wait set, its first load waits until the transform reads past the first batch, that is until the next
// batch is being transformed: a backfill that transforms only after each load never gets there, and the load
// gives up. Without, each load fails if the transform has read past the batch being loaded.
type watchTransform struct {
	load.Warehouse
	wait  bool
	first *sync.Once
	next  <-chan struct{}
	read  *atomic.Int64 // input bytes the transform has read
	ends  []int64       // where each batch's input ends
	loads *atomic.Int64
}

func (w watchTransform) Load(ctx context.Context, b load.Batch) (load.LoadResult, error) {
	k := w.loads.Add(1) - 1
	var err error
	if w.wait {
		w.first.Do(func() {
			select {
			case <-w.next:
			case <-time.After(20 * time.Second):
				err = errors.New("the next batch was not transformed while this one loaded")
			}
		})
	} else if read := w.read.Load(); k < int64(len(w.ends)) && read > w.ends[k] {
		err = fmt.Errorf("load %d ran while the transform had read %d bytes, past the batch's end at %d", k, read, w.ends[k])
	}
	if err != nil {
		return load.LoadResult{}, err
	}
	return w.Warehouse.Load(ctx, b)
}

// With Overlap, a backfill transforms the next batch while the current one loads; without, the two take
// turns. Either way every event loads once.
func TestBackfillOverlap(t *testing.T) {
	for _, overlap := range []bool{true, false} {
		t.Run(fmt.Sprintf("overlap=%v", overlap), func(t *testing.T) {
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
			// Each part, and so each batch, ends at the first line end at or after batchBytes.
			const batchBytes = 8 << 10
			lineLen := int64(len(lines[0]) + 1)
			part := (batchBytes + lineLen - 1) / lineLen * lineLen
			var ends []int64
			for end := part; end < int64(len(lines))*lineLen; end += part {
				ends = append(ends, end)
			}
			next := make(chan struct{})
			var signal sync.Once
			var read, loads atomic.Int64
			first := &sync.Once{} // shared by every warehouse the backfill opens: only the first load waits
			l, err := load.New(load.Options{
				DataDir:       e.dataDir,
				Buffer:        e.buffer(),
				MaxBatchBytes: batchBytes,
				Warehouse: func() (load.Warehouse, error) {
					return watchTransform{duckdb.New(e.dbPath), overlap, first, next, &read, ends, &loads}, nil
				},
				Attempts: 1,
			})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := l.Backfill(context.Background(), load.BackfillOptions{
				Files:     []string{in},
				PartBytes: batchBytes,
				Overlap:   overlap,
				Progress: func(done, total int64, _ transform.Counts) {
					read.Store(done)
					if done > ends[0] {
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
		})
	}
}
