package transform

import (
	"bytes"
	"math"
	"strconv"
	"time"

	"github.com/valyala/fastjson"
)

// The coercions below read a JSON value leniently into a column's type. SendPilot documents types loosely
// (numbers may come as strings or floats, optional fields as null or missing), so a value that does not fit
// leaves the typed column null; the original is always kept in the row's JSON column.

// textOf returns a value as text for a STRING column: a string's content, a number's or boolean's literal, and
// an object's or array's JSON. ok is false for null.
func textOf(v *fastjson.Value, scratch []byte) (text []byte, ok bool) {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return b, true
	case fastjson.TypeNull:
		return nil, false
	case fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
		return v.MarshalTo(scratch[:0]), true
	case fastjson.TypeObject, fastjson.TypeArray:
		return appendJSON(scratch[:0], v, nil, "", ""), true
	}
	return nil, false
}

// intOf reads an integer from a number (a float only if it is whole) or from a string holding one.
func intOf(v *fastjson.Value) (int64, bool) {
	switch v.Type() {
	case fastjson.TypeNumber:
		if n, err := v.Int64(); err == nil {
			return n, true
		}
		f, err := v.Float64()
		return wholeFloat(f, err)
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		s := string(bytes.TrimSpace(b))
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, true
		}
		f, err := strconv.ParseFloat(s, 64)
		return wholeFloat(f, err)
	}
	return 0, false
}

func wholeFloat(f float64, err error) (int64, bool) {
	if err != nil || f != math.Trunc(f) || math.IsInf(f, 0) || math.Abs(f) > 1<<62 {
		return 0, false
	}
	return int64(f), true
}

// floatOf reads a number, or a string holding one.
func floatOf(v *fastjson.Value) (float64, bool) {
	switch v.Type() {
	case fastjson.TypeNumber:
		f, err := v.Float64()
		return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		f, err := strconv.ParseFloat(string(bytes.TrimSpace(b)), 64)
		return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
	}
	return 0, false
}

// timeLayouts are tried in order after RFC 3339; times without an offset are taken as UTC.
var timeLayouts = []string{
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02",
}

// timeOf reads a timestamp as Unix microseconds from an RFC 3339 string (with or without fraction and offset,
// "T" or space) or from a number of Unix seconds or milliseconds. A time outside BigQuery's TIMESTAMP range
// (see safe.go) is not read.
func timeOf(v *fastjson.Value) (us int64, ok bool) {
	us, ok, _ = readTime(v)
	return us, ok
}

// readTime is timeOf that also says why a time was not read: outOfRange is true for a time it could read
// that lies outside the TIMESTAMP range, false for a value that is no time at all.
func readTime(v *fastjson.Value) (us int64, ok, outOfRange bool) {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return parseTime(b)
	case fastjson.TypeNumber:
		f, err := v.Float64()
		if err != nil || math.IsNaN(f) || f <= 0 {
			return 0, false, false
		}
		if f >= 1e11 { // milliseconds
			f *= 1e3
		} else {
			f *= 1e6
		}
		if f > maxTimestampMicros {
			return 0, false, true
		}
		return int64(f), true, false
	}
	return 0, false, false
}

func parseTime(b []byte) (us int64, ok, outOfRange bool) {
	s := string(bytes.TrimSpace(b))
	t, err := time.Parse(time.RFC3339Nano, s)
	for i := 0; err != nil && i < len(timeLayouts); i++ {
		t, err = time.Parse(timeLayouts[i], s)
	}
	if err != nil {
		return 0, false, false
	}
	us = t.UnixMicro()
	if us < minTimestampMicros || us > maxTimestampMicros {
		return 0, false, true
	}
	return us, true, false
}
