package loadtest

import (
	"context"
	"os"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"sendpilot-loader/load"
)

// Widen stands in for a release whose transform writes one more nullable string column: it rewrites the
// batch's Parquet file of table with the column name appended, valued value(event_id) for each row, so
// upgrade tests can load a schema with more columns than the warehouse has.
func Widen(t testing.TB, b load.Batch, table, name string, value func(eventID string) string) {
	t.Helper()
	path := b.Files[table]
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := pqarrow.ReadTable(context.Background(), f, nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	fields := append(tbl.Schema().Fields(), arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: true})
	schema := arrow.NewSchema(fields, nil)
	key := tbl.Schema().FieldIndices("event_id")[0]

	out, err := os.Create(path + ".wide")
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(schema, out, nil, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	tr := array.NewTableReader(tbl, 1<<16)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		ids := rec.Column(key).(*array.String)
		sb := array.NewStringBuilder(memory.DefaultAllocator)
		for i := range ids.Len() {
			sb.Append(value(ids.Value(i)))
		}
		extra := sb.NewArray()
		wide := array.NewRecordBatch(schema, append(append([]arrow.Array{}, rec.Columns()...), extra), rec.NumRows())
		err := w.Write(wide)
		wide.Release()
		extra.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close() // closed by the writer already; this only makes sure
	if err := os.Rename(path+".wide", path); err != nil {
		t.Fatal(err)
	}
}
