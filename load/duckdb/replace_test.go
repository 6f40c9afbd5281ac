package duckdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"sendpilot-loader/load"
	"sendpilot-loader/transform"
)

// A replace batch whose events file DuckDB cannot read (a string that is not UTF-8, which the transform never
// writes but a damaged file holds) is refused as the batch's data (ErrRejected), so the loader isolates its
// events as it does for an insert, rather than retrying it and stopping.
func TestReplaceRefusalIsData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := New(filepath.Join(dir, "warehouse.duckdb"))
	defer w.Close()
	if err := w.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "event_id", Type: arrow.BinaryTypes.String}}, nil)
	b := array.NewStringBuilder(memory.DefaultAllocator)
	b.Append(string([]byte{'e', 0xff, 0xfe}))
	col := b.NewArray()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 1)
	path := filepath.Join(dir, "events.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := pqarrow.NewFileWriter(schema, f, nil, pqarrow.DefaultWriterProps())
	if err == nil {
		err = fw.Write(rec)
	}
	if err == nil {
		err = fw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	batch := load.Batch{ID: "replace-bad", Replace: true, Files: map[string]string{transform.TableEvents: path},
		Rows: map[string]int64{transform.TableEvents: 1}}
	_, err = w.Load(ctx, batch)
	if !errors.Is(err, load.ErrRejected) || errors.Is(err, load.ErrSystemic) {
		t.Fatalf("load = %v, want ErrRejected", err)
	}
}
