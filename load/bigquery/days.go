package bigquery

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
)

// maxDayRanges bounds the occurred_at ranges one statement names, so that a batch whose events fall on many
// scattered days still gives a short statement: past it, the closest ranges are joined (and the days between
// them read).
const maxDayRanges = 64

// day is a UTC calendar day, counted from the Unix epoch: BigQuery's day partitions of a TIMESTAMP column
// are UTC days (https://cloud.google.com/bigquery/docs/partitioned-tables#date_timestamp_partitioned_tables).
type day int64

const microsPerDay = int64(24 * time.Hour / time.Microsecond)

func dayOf(us int64) day {
	d := us / microsPerDay
	if us%microsPerDay < 0 {
		d-- // floor, for times before 1970
	}
	return day(d)
}

func (d day) time() time.Time { return time.UnixMicro(int64(d) * microsPerDay).UTC() }

// occurredDays reads the occurred_at column of a Parquet file written by the transform and returns the days
// its rows fall on, in order, and whether some row has no occurred_at.
func occurredDays(path string) ([]day, bool, error) {
	r, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, false, fmt.Errorf("open %s: %w", path, err)
	}
	defer r.Close()
	col := r.MetaData().Schema.ColumnIndexByName("occurred_at")
	if col < 0 {
		return nil, false, fmt.Errorf("read %s: no occurred_at column", path)
	}
	seen := map[day]bool{}
	hasNull := false
	values, levels := make([]int64, 4096), make([]int16, 4096)
	for g := range r.NumRowGroups() {
		cr, err := r.RowGroup(g).Column(col)
		if err != nil {
			return nil, false, fmt.Errorf("read %s: %w", path, err)
		}
		ints, ok := cr.(*file.Int64ColumnChunkReader)
		if !ok {
			return nil, false, fmt.Errorf("read %s: occurred_at is %s, not INT64 timestamps", path, cr.Type())
		}
		for ints.HasNext() {
			levelsRead, n, err := ints.ReadBatch(int64(len(values)), values, levels, nil)
			if err != nil {
				return nil, false, fmt.Errorf("read %s: %w", path, err)
			}
			if int(levelsRead) > n {
				hasNull = true
			}
			for _, us := range values[:n] {
				seen[dayOf(us)] = true
			}
		}
	}
	days := make([]day, 0, len(seen))
	for d := range seen {
		days = append(days, d)
	}
	slices.Sort(days)
	return days, hasNull, nil
}

// dayRange is the days first..last, both included.
type dayRange struct{ first, last day }

// dayRanges joins sorted days into ranges of consecutive days, at most maxRanges of them: when there are more,
// the ranges separated by the shortest gaps are joined, so the days a statement reads beyond the batch's own
// are as few as the bound allows.
func dayRanges(days []day, maxRanges int) []dayRange {
	var out []dayRange
	for _, d := range days {
		if n := len(out); n > 0 && out[n-1].last+1 >= d {
			out[n-1].last = d
			continue
		}
		out = append(out, dayRange{d, d})
	}
	if len(out) <= maxRanges {
		return out
	}
	// Keep the widest maxRanges-1 gaps as splits; join across the others.
	gaps := make([]int, len(out)-1) // gaps[i] lies between out[i] and out[i+1]
	for i := range gaps {
		gaps[i] = i
	}
	slices.SortStableFunc(gaps, func(a, b int) int {
		ga, gb := out[a+1].first-out[a].last, out[b+1].first-out[b].last
		switch {
		case ga > gb:
			return -1
		case ga < gb:
			return 1
		}
		return 0
	})
	split := make([]bool, len(gaps))
	for _, i := range gaps[:maxRanges-1] {
		split[i] = true
	}
	joined := []dayRange{out[0]}
	for i, r := range out[1:] {
		if split[i] {
			joined = append(joined, r)
		} else {
			joined[len(joined)-1].last = r.last
		}
	}
	return joined
}

// pruneDaysSQL restricts the target table T to the given days, and the NULL partition when hasNull, with
// constant bounds on the partitioning column, which BigQuery uses to prune partitions in a MERGE or DELETE
// (https://cloud.google.com/bigquery/docs/using-dml-with-partitioned-tables#pruning_partitions_when_using_a_merge_statement).
func pruneDaysSQL(days []day, hasNull bool) string {
	var prune []string
	for _, r := range dayRanges(days, maxDayRanges) {
		prune = append(prune, fmt.Sprintf("T.occurred_at BETWEEN TIMESTAMP '%s 00:00:00' AND TIMESTAMP '%s 23:59:59.999999'",
			r.first.time().Format(time.DateOnly), r.last.time().Format(time.DateOnly)))
	}
	if hasNull || len(days) == 0 {
		prune = append(prune, "T.occurred_at IS NULL")
	}
	return "(" + strings.Join(prune, " OR ") + ")"
}
