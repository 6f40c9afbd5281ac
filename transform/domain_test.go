package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// This file checks values against BigQuery's documented domains, written from the documentation and not from
// the transform's code, so that a value the transform gets wrong is caught here:
//
//   - STRING: UTF-8 text. https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#string_type
//   - JSON: RFC 8259 text (https://www.rfc-editor.org/rfc/rfc8259) that PARSE_JSON accepts with
//     wide_number_mode 'round' (https://cloud.google.com/bigquery/docs/reference/standard-sql/json_functions#parse_json):
//     a number must round to a FLOAT64 ('round' refuses one that cannot be rounded, i.e. beyond FLOAT64's
//     range; a non-zero number that rounds to zero is refused here too, to be safe), strings must be UTF-8
//     (a \u escape of an unpaired surrogate encodes no character), and nesting is at most 500 deep
//     (https://cloud.google.com/bigquery/docs/json-data#limitations).
//   - TIMESTAMP: 0001-01-01 00:00:00 to 9999-12-31 23:59:59.999999 UTC.
//     https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#timestamp_type
//   - INT64 (any Arrow int64) and FLOAT64: finite here, since DuckDB and BigQuery disagree on NaN ordering and
//     the transform promises finite values.
//   - Row size: at most 100 MB. https://cloud.google.com/bigquery/quotas#load_jobs

const (
	bqMinTimestamp = -62135596800000000 // 0001-01-01T00:00:00Z in µs
	bqMaxTimestamp = 253402300799999999 // 9999-12-31T23:59:59.999999Z in µs
	bqMaxRowBytes  = 100 << 20
	bqJSONDepth    = 500
)

// checkBigQueryDomains returns an error naming the first value of rec outside BigQuery's domain for its
// column. jsonCols names the columns that load as JSON.
func checkBigQueryDomains(rec arrow.RecordBatch, jsonCols map[string]bool) error {
	rowBytes := make([]int, rec.NumRows())
	for c, f := range rec.Schema().Fields() {
		col := rec.Column(c)
		for i := 0; i < col.Len(); i++ {
			if col.IsNull(i) {
				continue
			}
			where := fmt.Sprintf("%s row %d", f.Name, i)
			switch a := col.(type) {
			case *array.String:
				s := a.Value(i)
				rowBytes[i] += len(s)
				if !utf8.ValidString(s) {
					return fmt.Errorf("%s: not UTF-8: %q", where, s)
				}
				if jsonCols[f.Name] {
					if err := checkParseJSON([]byte(s)); err != nil {
						return fmt.Errorf("%s: PARSE_JSON would refuse %.200q: %w", where, s, err)
					}
				}
			case *array.Timestamp:
				rowBytes[i] += 8
				if us := int64(a.Value(i)); us < bqMinTimestamp || us > bqMaxTimestamp {
					return fmt.Errorf("%s: timestamp %d µs outside 0001-01-01..9999-12-31", where, us)
				}
			case *array.Float64:
				rowBytes[i] += 8
				if v := a.Value(i); math.IsInf(v, 0) || math.IsNaN(v) {
					return fmt.Errorf("%s: float %v not finite", where, v)
				}
			case *array.Int64:
				rowBytes[i] += 8
			case *array.Boolean:
				rowBytes[i]++
			case *array.List:
				vals := a.ListValues().(*array.String)
				start, end := a.ValueOffsets(i)
				for j := start; j < end; j++ {
					rowBytes[i] += len(vals.Value(int(j)))
					if !utf8.ValidString(vals.Value(int(j))) {
						return fmt.Errorf("%s: list element not UTF-8", where)
					}
				}
			default:
				return fmt.Errorf("%s: no domain check for %s", where, f.Type)
			}
		}
	}
	for i, n := range rowBytes {
		if n > bqMaxRowBytes {
			return fmt.Errorf("row %d: %d bytes, over BigQuery's 100 MB row limit", i, n)
		}
	}
	return nil
}

// checkParseJSON reports why PARSE_JSON(s, wide_number_mode => 'round') would refuse s, or nil.
func checkParseJSON(s []byte) error {
	if !utf8.Valid(s) {
		return errors.New("invalid UTF-8")
	}
	if !json.Valid(s) { // RFC 8259 syntax, including no raw control characters in strings
		return errors.New("not RFC 8259 JSON")
	}
	if err := checkSurrogateEscapes(s); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(s))
	dec.UseNumber()
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '{' || t == '[' {
				if depth++; depth > bqJSONDepth {
					return fmt.Errorf("nested deeper than %d", bqJSONDepth)
				}
			} else {
				depth--
			}
		case json.Number:
			f, err := strconv.ParseFloat(string(t), 64)
			if err != nil || math.IsInf(f, 0) {
				return fmt.Errorf("number %s does not round to a FLOAT64", t)
			}
			if f == 0 && bytes.ContainsAny(mantissa(string(t)), "123456789") {
				return fmt.Errorf("number %s rounds to zero", t)
			}
		}
	}
}

func mantissa(n string) []byte {
	if i := bytes.IndexAny([]byte(n), "eE"); i >= 0 {
		return []byte(n[:i])
	}
	return []byte(n)
}

// checkSurrogateEscapes finds a \u escape of a surrogate that is not a high one followed by a low one.
// encoding/json accepts those and decodes them to U+FFFD; BigQuery's strings hold characters, and an unpaired
// surrogate is none.
func checkSurrogateEscapes(s []byte) error {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++
		if i >= len(s) || s[i] != 'u' {
			continue // a one-character escape such as \\ or \"
		}
		r, _ := strconv.ParseUint(string(s[i+1:i+5]), 16, 32)
		i += 4
		if !utf16.IsSurrogate(rune(r)) {
			continue
		}
		if r >= 0xdc00 || i+6 >= len(s) || s[i+1] != '\\' || s[i+2] != 'u' {
			return fmt.Errorf("unpaired surrogate escape \\u%04x", r)
		}
		r2, _ := strconv.ParseUint(string(s[i+3:i+7]), 16, 32)
		if r2 < 0xdc00 || r2 > 0xdfff {
			return fmt.Errorf("unpaired surrogate escape \\u%04x", r)
		}
		i += 6
	}
	return nil
}
