package bigquery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"

	"sendpilot-loader/load"
	sqlfiles "sendpilot-loader/sql"
)

func TestErrorKinds(t *testing.T) {
	tests := []struct {
		err  error
		want errKind
	}{
		{&googleapi.Error{Code: 503}, transientError},
		{&googleapi.Error{Code: 429}, transientError},
		{&googleapi.Error{Code: 403, Errors: []googleapi.ErrorItem{{Reason: "quotaExceeded"}}}, transientError},
		{&googleapi.Error{Code: 400, Errors: []googleapi.ErrorItem{{Reason: "invalid"}}}, permanentError},
		{&googleapi.Error{Code: 400}, permanentError},
		{&googleapi.Error{Code: 404}, otherError},
		{fmt.Errorf("wait: %w", &bigquery.Error{Reason: "invalidQuery"}), permanentError},
		{&bigquery.Error{Reason: "backendError"}, transientError},
		{errors.New("connection reset by peer"), transientError},
		{context.Canceled, otherError},
	}
	for _, tc := range tests {
		if got := kindOf(tc.err); got != tc.want {
			t.Errorf("kindOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// The MERGE touches only the batch's partitions, and the NULL partition only when the batch has rows there.
func TestMergeSQLPrunesPartitions(t *testing.T) {
	cols, err := sqlfiles.Tables("bigquery/tables.sql")
	if err != nil {
		t.Fatal(err)
	}
	w := &Warehouse{cfg: Config{Dataset: "ds"}, columns: cols}
	day := time.Date(2024, 2, 24, 10, 30, 0, 0, time.UTC)
	tests := []struct {
		batch load.Batch
		want  []string
		not   []string
	}{
		{load.Batch{MinOccurred: day, MaxOccurred: day.Add(time.Hour)},
			[]string{"T.occurred_at BETWEEN TIMESTAMP '2024-02-24 10:30:00' AND TIMESTAMP '2024-02-24 11:30:00'", "T.event_id = S.event_id", "PARSE_JSON(S.data"},
			[]string{"IS NULL"}},
		{load.Batch{MinOccurred: day, MaxOccurred: day, HasNullOccurred: true}, []string{"BETWEEN", "OR T.occurred_at IS NULL"}, nil},
		{load.Batch{HasNullOccurred: true}, []string{"(T.occurred_at IS NULL)"}, []string{"BETWEEN"}},
	}
	for _, tc := range tests {
		q := w.mergeSQL("events", "_dedup", tc.batch)
		for _, want := range tc.want {
			if !strings.Contains(q, want) {
				t.Errorf("merge lacks %q:\n%s", want, q)
			}
		}
		for _, not := range tc.not {
			if strings.Contains(q, not) {
				t.Errorf("merge has %q:\n%s", not, q)
			}
		}
	}
}
