package transform

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// rows builds one table's record batch a row at a time. Values are appended to their column's builder as they
// are found, in any order; endRow appends null to every column the row did not fill. The first value put in a
// column wins, so a key repeated inside one object cannot shift the columns. Text is bounded as safe.go says;
// what was cut or left out is recorded in rep, shared by the tables of one flattener.
type rows struct {
	def    *tableDef
	rep    *repairs
	rb     *array.RecordBuilder
	str    []*array.StringBuilder
	i64    []*array.Int64Builder
	f64    []*array.Float64Builder
	ts     []*array.TimestampBuilder
	bools  []*array.BooleanBuilder
	lists  []*array.ListBuilder
	filled []bool
	n      int
	bytes  int
}

func newRows(mem memory.Allocator, def *tableDef, rep *repairs) *rows {
	r := &rows{def: def, rep: rep, rb: array.NewRecordBuilder(mem, def.schema)}
	k := len(def.columns)
	r.str, r.i64, r.f64 = make([]*array.StringBuilder, k), make([]*array.Int64Builder, k), make([]*array.Float64Builder, k)
	r.ts, r.bools, r.lists = make([]*array.TimestampBuilder, k), make([]*array.BooleanBuilder, k), make([]*array.ListBuilder, k)
	r.filled = make([]bool, k)
	for i, f := range r.rb.Fields() {
		switch b := f.(type) {
		case *array.StringBuilder:
			r.str[i] = b
		case *array.Int64Builder:
			r.i64[i] = b
		case *array.Float64Builder:
			r.f64[i] = b
		case *array.TimestampBuilder:
			r.ts[i] = b
		case *array.BooleanBuilder:
			r.bools[i] = b
		case *array.ListBuilder:
			r.lists[i] = b
		}
	}
	return r
}

// claim marks col as filled for this row and reports whether it was still free.
func (r *rows) claim(col int) bool {
	if r.filled[col] {
		return false
	}
	r.filled[col] = true
	return true
}

// putStr puts b into a text or JSON column; it reports whether b was stored whole (false when the column was
// already filled, or b was cut or left out for its size).
func (r *rows) putStr(col int, b []byte) (whole bool) {
	if !r.claim(col) {
		return false
	}
	whole = true
	if len(b) > maxTextBytes {
		c := &r.def.columns[col]
		switch {
		case !c.json:
			b = cutText(b, maxTextBytes)
			r.rep.add(RepairTruncated, r.def.name, c.name)
			whole = false
		case len(b) > maxJSONBytes:
			r.rep.add(RepairOmitted, r.def.name, c.name)
			r.str[col].AppendNull()
			return false
		}
	}
	r.str[col].BinaryBuilder.Append(b)
	r.bytes += len(b)
	return whole
}

func (r *rows) putString(col int, s string) {
	if r.claim(col) {
		r.str[col].BinaryBuilder.AppendString(s)
		r.bytes += len(s)
	}
}

// putInt puts v into an INT64 column; it reports whether it was stored (false when the column was already
// filled).
func (r *rows) putInt(col int, v int64) bool {
	if !r.claim(col) {
		return false
	}
	r.i64[col].Append(v)
	r.bytes += 8
	return true
}

func (r *rows) putFloat(col int, v float64) {
	if r.claim(col) {
		r.f64[col].Append(v)
		r.bytes += 8
	}
}

func (r *rows) putTime(col int, micros int64) {
	if r.claim(col) {
		r.ts[col].Append(arrow.Timestamp(micros))
		r.bytes += 8
	}
}

func (r *rows) putBool(col int, v bool) {
	if r.claim(col) {
		r.bools[col].Append(v)
		r.bytes++
	}
}

// startList opens the list in col for this row and returns it; ok is false if the column is already filled.
func (r *rows) startList(col int) (l list, ok bool) {
	if !r.claim(col) {
		return list{}, false
	}
	r.lists[col].Append(true)
	return list{r: r, col: col, b: r.lists[col].ValueBuilder().(*array.StringBuilder)}, true
}

// list appends the elements of one row's list column, at most maxTextBytes of them in all; the rest are left
// out and recorded as a truncation of the column.
type list struct {
	r     *rows
	col   int
	b     *array.StringBuilder
	bytes int
	full  bool
}

func (l *list) add(s []byte) {
	if l.full {
		return
	}
	if l.bytes+len(s) > maxTextBytes {
		l.full = true
		l.r.rep.add(RepairTruncated, l.r.def.name, l.r.def.columns[l.col].name)
		return
	}
	l.bytes += len(s)
	l.r.bytes += len(s)
	l.b.BinaryBuilder.Append(s)
}

// endRow completes the row with nulls.
func (r *rows) endRow() {
	for col, done := range r.filled {
		if !done {
			r.rb.Field(col).AppendNull()
		}
		r.filled[col] = false
	}
	r.n++
}

// take returns the rows built so far as a record batch and starts afresh, with room reserved for as many rows
// and string bytes as this batch had: growing a builder by doubling copies and zeroes its buffers each time,
// which cost more than parsing.
func (r *rows) take() arrow.RecordBatch {
	n := r.n
	data := make([]int, len(r.str))
	for i, b := range r.str {
		if b != nil {
			data[i] = b.DataLen()
		}
	}
	var listData int
	for _, l := range r.lists {
		if l != nil {
			listData += l.ValueBuilder().(*array.StringBuilder).DataLen()
		}
	}
	rec := r.rb.NewRecordBatch()
	r.n, r.bytes = 0, 0
	r.rb.Reserve(n + n/8)
	for i, b := range r.str {
		if b != nil && data[i] > 0 {
			b.ReserveData(data[i] + data[i]/8)
		}
	}
	for _, l := range r.lists {
		if l != nil && listData > 0 {
			l.ValueBuilder().(*array.StringBuilder).ReserveData(listData + listData/8)
		}
	}
	return rec
}

func (r *rows) release() { r.rb.Release() }
