package bigquery

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"sendpilot-loader/load"
	"sendpilot-loader/load/loadtest"
)

func dayAt(s string) day {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return dayOf(t.UnixMicro())
}

func extractorAt(id, ts string) string {
	return fmt.Sprintf(`{"eventId":%q,"eventType":"lead_extractor.job.completed","timestamp":%q,"data":{"campaign_id":"c","leads":[{"id":"x"}]}}`, id, ts)
}

// The days come from each table's own file, in UTC, with times before 1970 on the day before the epoch, and
// a row without occurred_at is noted.
func TestOccurredDays(t *testing.T) {
	b := loadtest.BatchFrom(t, "b",
		`{"eventId":"evt_1","eventType":"message.sent","timestamp":"2024-02-24T23:30:00-05:00","data":{}}`, // 2024-02-25 UTC
		`{"eventId":"evt_2","eventType":"message.sent","timestamp":"1969-12-31T23:59:59Z","data":{}}`,
		`{"eventId":"evt_3","eventType":"message.sent","data":{}}`,
		extractorAt("evt_4", "2019-06-01T08:00:00Z"),
		extractorAt("evt_5", "2019-06-01T20:00:00Z"),
	)
	for _, tc := range []struct {
		table   string
		days    []string
		hasNull bool
	}{
		{"events", []string{"1969-12-31", "2019-06-01", "2024-02-25"}, true},
		{"leads", []string{"2019-06-01"}, false},
	} {
		days, hasNull, err := occurredDays(b.Files[tc.table])
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range days {
			got = append(got, d.time().Format(time.DateOnly))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.days) || hasNull != tc.hasNull {
			t.Errorf("%s: days %v, null %v; want %v, %v", tc.table, got, hasNull, tc.days, tc.hasNull)
		}
	}
}

func TestDayRanges(t *testing.T) {
	d := dayAt("2024-03-01")
	tests := []struct {
		days []day
		max  int
		want string
	}{
		{nil, 4, "[]"},
		{[]day{d}, 4, "[{0 0}]"},
		{[]day{d, d + 1, d + 2, d + 5}, 4, "[{0 2} {5 5}]"},
		// Over the bound, the shortest gaps are joined first: 1..3 (gap 2) joins before 10 (gap 5) and 40.
		{[]day{d, d + 3, d + 8, d + 40}, 3, "[{0 3} {8 8} {40 40}]"},
		{[]day{d, d + 3, d + 8, d + 40}, 2, "[{0 8} {40 40}]"},
		{[]day{d, d + 3, d + 8, d + 40}, 1, "[{0 40}]"},
	}
	for _, tc := range tests {
		var got []string
		for _, r := range dayRanges(tc.days, tc.max) {
			got = append(got, fmt.Sprintf("{%d %d}", r.first-d, r.last-d))
		}
		if s := "[" + strings.Join(got, " ") + "]"; s != tc.want {
			t.Errorf("dayRanges(%v, %d) = %s, want %s", tc.days, tc.max, s, tc.want)
		}
	}
	many := make([]day, 10*maxDayRanges)
	for i := range many {
		many[i] = d + day(2*i)
	}
	if n := len(dayRanges(many, maxDayRanges)); n != maxDayRanges {
		t.Errorf("%d scattered days give %d ranges, want %d", len(many), n, maxDayRanges)
	}
}

// A batch with one late event reads that event's day and the batch's own days, not every day between; the
// extreme days a TIMESTAMP can hold stay valid literals.
func TestPruneDaysSQL(t *testing.T) {
	tests := []struct {
		days    []day
		hasNull bool
		want    string
	}{
		{[]day{dayAt("2019-06-01"), dayAt("2024-02-24"), dayAt("2024-02-25")}, false,
			"(T.occurred_at BETWEEN TIMESTAMP '2019-06-01 00:00:00' AND TIMESTAMP '2019-06-01 23:59:59.999999'" +
				" OR T.occurred_at BETWEEN TIMESTAMP '2024-02-24 00:00:00' AND TIMESTAMP '2024-02-25 23:59:59.999999')"},
		{[]day{dayAt("0001-01-01"), dayAt("9999-12-31")}, true,
			"(T.occurred_at BETWEEN TIMESTAMP '0001-01-01 00:00:00' AND TIMESTAMP '0001-01-01 23:59:59.999999'" +
				" OR T.occurred_at BETWEEN TIMESTAMP '9999-12-31 00:00:00' AND TIMESTAMP '9999-12-31 23:59:59.999999'" +
				" OR T.occurred_at IS NULL)"},
		{nil, true, "(T.occurred_at IS NULL)"},
	}
	for _, tc := range tests {
		if got := pruneDaysSQL(tc.days, tc.hasNull); got != tc.want {
			t.Errorf("pruneDaysSQL = %s\nwant          %s", got, tc.want)
		}
	}
}

// The merge of each table names the days of that table's rows; a file that cannot be read falls back to the
// batch's whole range, which holds those days too.
func TestPruneForUsesTheTablesDays(t *testing.T) {
	b := loadtest.BatchFrom(t, "b", extractorAt("evt_late", "2019-06-01T08:00:00Z"),
		`{"eventId":"evt_now","eventType":"message.sent","timestamp":"2024-02-24T10:30:00Z","data":{}}`)
	if got := pruneFor(b, "leads"); got != "(T.occurred_at BETWEEN TIMESTAMP '2019-06-01 00:00:00' AND TIMESTAMP '2019-06-01 23:59:59.999999')" {
		t.Errorf("leads prune = %s", got)
	}
	if got := pruneFor(b, "events"); strings.Count(got, "BETWEEN") != 2 || strings.Contains(got, "2020-") {
		t.Errorf("events prune = %s, want the two days only", got)
	}
	missing := load.Batch{Files: map[string]string{"events": b.Files["events"] + ".gone"}, MinOccurred: b.MinOccurred, MaxOccurred: b.MaxOccurred}
	if got, want := pruneFor(missing, "events"), pruneSQL(missing); got != want {
		t.Errorf("prune of an unreadable file = %s, want the batch's range %s", got, want)
	}
}
