package transform

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// ReadParquetJSON reads a Parquet file written by Files and returns its rows as JSON lines, in file order. It
// is meant for tests, golden files and people inspecting output, not for large files.
func ReadParquetJSON(path string) ([]byte, error) {
	tbl, err := readTable(path)
	if err != nil {
		return nil, err
	}
	defer tbl.Release()
	var out bytes.Buffer
	tr := array.NewTableReader(tbl, 1<<16)
	defer tr.Release()
	for tr.Next() {
		if err := array.RecordToJSON(tr.RecordBatch(), &out); err != nil {
			return nil, fmt.Errorf("render rows: %w", err)
		}
	}
	return out.Bytes(), nil
}

func readTable(path string) (arrow.Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open parquet: %w", err)
	}
	defer f.Close()
	tbl, err := pqarrow.ReadTable(context.Background(), f, nil, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("read parquet %s: %w", path, err)
	}
	return tbl, nil
}
