package transform

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"sendpilot-loader/internal/fsutil"
)

// tableFile is one Parquet output being written under a temporary name.
type tableFile struct {
	def   *tableDef
	path  string
	tmp   string
	f     *os.File
	bw    *bufio.Writer // batches the writer's many small writes into few system calls
	w     *pqarrow.FileWriter
	rows  int64
	limit int64
	// group is the in-memory size of the record batches in the open row group. The writer keeps a buffered
	// row group's encoded pages in memory until it is closed, so this bounds memory, and sets the row-group
	// size BigQuery and DuckDB read.
	group int64
}

// outputs are the files of one run.
type outputs struct {
	dir        string
	tables     []*tableFile
	qPath      string
	qTmp       string
	qFile      *os.File
	quarantine *bufio.Writer
	done       bool
}

// writerProperties are the Parquet settings: snappy pages (cheap to write, and what BigQuery and DuckDB read
// fastest), dictionary encoding only for the low-cardinality columns the schema marks, and files that say
// which Arrow schema they hold so types round-trip exactly.
func writerProperties(def *tableDef, mem memory.Allocator) (*parquet.WriterProperties, pqarrow.ArrowWriterProperties) {
	opts := []parquet.WriterProperty{
		parquet.WithAllocator(mem),
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithDictionaryDefault(false),
		parquet.WithStats(true),
		// Statistics of long text (JSON, summaries) are useless for pruning and were kept for every page of the
		// file until it closed, so memory grew with the input: keep only short min/max values, and no page index.
		parquet.WithMaxStatsSize(256),
		parquet.WithPageIndexEnabled(false),
		parquet.WithCreatedBy("sendpilot-loader"),
		parquet.WithMaxRowGroupLength(1 << 20),
		parquet.WithDataPageSize(256 << 10),
	}
	for _, c := range def.columns {
		if c.dict {
			opts = append(opts, parquet.WithDictionaryFor(c.name, true))
		}
	}
	return parquet.NewWriterProperties(opts...), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())
}

func newOutputs(dir string, opts Options) (*outputs, error) {
	o := &outputs{dir: dir}
	for _, def := range tableDefs {
		path := filepath.Join(dir, def.name+".parquet")
		tf := &tableFile{def: def, path: path, tmp: path + fsutil.TempSuffix, limit: opts.RowGroupBytes}
		f, err := os.Create(tf.tmp)
		if err != nil {
			o.abort()
			return nil, fmt.Errorf("create %s: %w", tf.tmp, err)
		}
		tf.f, tf.bw = f, bufio.NewWriterSize(f, 1<<20)
		props, arrProps := writerProperties(def, opts.Allocator)
		w, err := pqarrow.NewFileWriter(def.schema, tf.bw, props, arrProps)
		if err != nil {
			f.Close()
			o.abort()
			return nil, fmt.Errorf("start parquet file %s: %w", tf.tmp, err)
		}
		tf.w = w
		o.tables = append(o.tables, tf)
	}
	o.qPath = filepath.Join(dir, QuarantineFile)
	o.qTmp = o.qPath + fsutil.TempSuffix
	qf, err := os.Create(o.qTmp)
	if err != nil {
		o.abort()
		return nil, fmt.Errorf("create quarantine file: %w", err)
	}
	o.qFile, o.quarantine = qf, bufio.NewWriterSize(qf, 1<<20)
	return o, nil
}

// writeQuarantine appends one chunk's quarantine records.
func (o *outputs) writeQuarantine(q []byte) error {
	if _, err := o.quarantine.Write(q); err != nil {
		return fmt.Errorf("write quarantine: %w", err)
	}
	return nil
}

// write appends one chunk's rows of this table, starting a new row group when the current one is big enough.
func (t *tableFile) write(rec arrow.RecordBatch) error {
	if rec.NumRows() == 0 {
		return nil
	}
	if err := t.w.WriteBuffered(rec); err != nil {
		return fmt.Errorf("write %s rows: %w", t.def.name, err)
	}
	t.rows += rec.NumRows()
	t.group += recordBytes(rec)
	if t.group >= t.limit {
		if err := t.w.NewBufferedRowGroupChecked(); err != nil {
			return fmt.Errorf("close %s row group: %w", t.def.name, err)
		}
		t.group = 0
	}
	return nil
}

// recordBytes is the size of a record batch's buffers.
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	var add func(d arrow.ArrayData)
	add = func(d arrow.ArrayData) {
		for _, b := range d.Buffers() {
			if b != nil {
				n += int64(b.Len())
			}
		}
		for _, c := range d.Children() {
			add(c)
		}
	}
	for _, col := range rec.Columns() {
		add(col.Data())
	}
	return n
}

// commit closes every file, fsyncs it and renames it to its final name.
func (o *outputs) commit() ([]TableResult, error) {
	var res []TableResult
	for _, t := range o.tables {
		if err := t.w.Close(); err != nil {
			return nil, fmt.Errorf("finish %s: %w", t.tmp, err)
		}
		t.w = nil
		if err := t.bw.Flush(); err != nil {
			return nil, fmt.Errorf("write %s: %w", t.tmp, err)
		}
		if err := t.f.Sync(); err != nil {
			return nil, fmt.Errorf("sync %s: %w", t.tmp, err)
		}
		info, err := t.f.Stat()
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", t.tmp, err)
		}
		if err := t.f.Close(); err != nil {
			return nil, fmt.Errorf("close %s: %w", t.tmp, err)
		}
		t.f = nil
		res = append(res, TableResult{Table: t.def.name, Path: t.path, Rows: t.rows, Bytes: info.Size()})
	}
	if err := o.quarantine.Flush(); err != nil {
		return nil, fmt.Errorf("write quarantine: %w", err)
	}
	if err := o.qFile.Sync(); err != nil {
		return nil, fmt.Errorf("sync quarantine: %w", err)
	}
	if err := o.qFile.Close(); err != nil {
		return nil, fmt.Errorf("close quarantine: %w", err)
	}
	o.qFile = nil
	for _, t := range o.tables {
		if err := os.Rename(t.tmp, t.path); err != nil {
			return nil, fmt.Errorf("publish %s: %w", t.path, err)
		}
	}
	if err := os.Rename(o.qTmp, o.qPath); err != nil {
		return nil, fmt.Errorf("publish quarantine: %w", err)
	}
	o.done = true
	return res, fsutil.SyncDir(o.dir)
}

// abort removes the temporary files of a run that did not commit.
func (o *outputs) abort() {
	if o.done {
		return
	}
	for _, t := range o.tables {
		if t.w != nil {
			t.w.Close()
		}
		if t.f != nil {
			t.f.Close()
		}
		os.Remove(t.tmp)
	}
	if o.qFile != nil {
		o.qFile.Close()
	}
	if o.qTmp != "" {
		os.Remove(o.qTmp)
	}
	o.done = true
}
