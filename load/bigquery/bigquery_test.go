package bigquery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	bqv2 "google.golang.org/api/bigquery/v2"
	"google.golang.org/api/googleapi"

	"sendpilot-loader/load"
	sqlfiles "sendpilot-loader/sql"
)

// Real error bodies, as BigQuery returns them (testdata/errors: http-* are HTTP error responses, job-* are job
// resources from jobs.get whose status carries the error), sort into the loader's three classes, and the error
// the warehouse returns wraps the matching sentinel.
func TestErrorClassesOfRealBodies(t *testing.T) {
	tests := []struct {
		file string
		kind jobKind
		want errClass
	}{
		{"http-backend-error", anyCall, transientClass},
		{"http-internal-error", anyCall, transientClass},
		{"http-rate-limit-exceeded", anyCall, transientClass},
		{"http-quota-rate-limits", anyCall, transientClass},
		{"http-quota-daily", anyCall, systemicClass},
		{"http-access-denied", anyCall, systemicClass},
		{"http-dataset-not-found", anyCall, systemicClass},
		{"http-dataset-not-in-location", anyCall, systemicClass},
		{"http-job-not-found", anyCall, transientClass}, // 404 after create: the job's metadata is not visible yet
		{"http-job-duplicate", anyCall, systemicClass},  // 409 on reuse is handled before classification
		{"http-unrecognised-400", anyCall, systemicClass},
		{"http-unrecognised-400", loadJob, systemicClass},
		{"http-400-no-reason", loadJob, systemicClass},
		{"http-different-locations", loadJob, systemicClass},
		{"http-query-concurrent-update", anyCall, transientClass},
		{"http-too-many-dml", anyCall, transientClass},
		{"job-backend-error", anyCall, transientClass},
		{"job-job-backend-error", anyCall, transientClass},
		{"job-job-internal-error", anyCall, transientClass},
		{"job-job-rate-limit-exceeded", anyCall, transientClass},
		{"job-serialize-concurrent-update", anyCall, transientClass},
		{"job-transaction-aborted", anyCall, transientClass},
		{"job-too-many-dml", anyCall, transientClass},
		{"job-resources-exceeded-memory", anyCall, systemicClass},
		{"job-resources-exceeded-memory", batchQuery, rejectedClass}, // a merge too big for its memory: split
		{"job-too-many-dml", batchQuery, transientClass},
		{"job-merge-type-mismatch", batchQuery, systemicClass},
		{"job-load-bad-row", batchQuery, systemicClass},
		{"job-quota-rate-limits", loadJob, transientClass},
		{"job-quota-daily", anyCall, systemicClass},
		{"job-load-bad-row", loadJob, rejectedClass},
		{"job-load-bad-row", anyCall, systemicClass}, // only a load job reads the batch's rows
		{"job-load-schema-mismatch", loadJob, systemicClass},
		{"job-load-different-locations", loadJob, systemicClass},
		{"job-merge-type-mismatch", anyCall, systemicClass},
		{"job-stopped", anyCall, transientClass},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%d", tc.file, tc.kind), func(t *testing.T) {
			err := fmt.Errorf("merge events: %w", readError(t, tc.file))
			if got := classOf(err, tc.kind); got != tc.want {
				t.Fatalf("classOf(%v) = %s, want %s", err, got, tc.want)
			}
			wrapped := classified(err, tc.kind)
			if errors.Is(wrapped, load.ErrRejected) != (tc.want == rejectedClass) || errors.Is(wrapped, load.ErrSystemic) != (tc.want == systemicClass) {
				t.Errorf("classified(%v) = %v, does not wrap the %s sentinel alone", err, wrapped, tc.want)
			}
		})
	}
}

// readError turns a golden body into the error the client library gives for it: googleapi.CheckResponse for an
// HTTP error, the job status's errorResult (as bigquery.JobStatus.Err returns it) for a job resource.
func readError(t *testing.T, name string) error {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "errors", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(name, "http-") {
		var body struct {
			Error struct{ Code int } `json:"error"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatal(err)
		}
		err := googleapi.CheckResponse(&http.Response{StatusCode: body.Error.Code, Body: io.NopCloser(bytes.NewReader(raw))})
		if err == nil {
			t.Fatalf("%s: no error in body", name)
		}
		return err
	}
	var job bqv2.Job
	if err := json.Unmarshal(raw, &job); err != nil {
		t.Fatal(err)
	}
	e := job.Status.ErrorResult
	return &bigquery.Error{Location: e.Location, Message: e.Message, Reason: e.Reason}
}

// Errors that are not BigQuery's answers: no answer at all is transient, and so is a step deadline.
func TestErrorClassesWithoutBody(t *testing.T) {
	tests := []struct {
		err  error
		want errClass
	}{
		{errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: connection reset by peer"), transientClass},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), transientClass},
		{context.Canceled, transientClass},
		{&googleapi.Error{Code: 502}, transientClass},
		{&googleapi.Error{Code: 429}, transientClass},
		{&googleapi.Error{Code: 401}, systemicClass},
		{&googleapi.Error{Code: 400}, systemicClass},
		{&bigquery.Error{Reason: "somethingNew", Message: "x"}, systemicClass},
	}
	for _, tc := range tests {
		if got := classOf(tc.err, loadJob); got != tc.want {
			t.Errorf("classOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// BigQuery loads into a dataset outside the US multi-region only from a bucket in its region or inside its
// multi-region; a location the check cannot place is left to the load job's own error.
func TestBucketFits(t *testing.T) {
	tests := []struct {
		dataset, bucket string
		want            bool
	}{
		{"US", "ASIA-NORTHEAST1", true},
		{"US", "EU", true},
		{"EU", "EU", true},
		{"EU", "EUROPE-WEST1", true},
		{"EU", "US", false},
		{"EU", "US-CENTRAL1", false},
		{"asia-northeast1", "ASIA-NORTHEAST1", true},
		{"asia-northeast1", "EU", false},
		{"asia-northeast1", "US", false},
		{"asia-northeast1", "ASIA-NORTHEAST2", false},
		{"europe-west1", "EUR4", true}, // a dual-region: left to BigQuery
		{"", "EU", true},               // no location known: left to BigQuery
	}
	for _, tc := range tests {
		if got := bucketFits(tc.dataset, tc.bucket); got != tc.want {
			t.Errorf("bucketFits(%q, %q) = %v, want %v", tc.dataset, tc.bucket, got, tc.want)
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
		{load.Batch{HasOccurred: true, MinOccurred: day, MaxOccurred: day.Add(time.Hour)},
			[]string{"T.occurred_at BETWEEN TIMESTAMP '2024-02-24 10:30:00' AND TIMESTAMP '2024-02-24 11:30:00'", "T.event_id = S.event_id", "PARSE_JSON(S.data"},
			[]string{"IS NULL"}},
		{load.Batch{HasOccurred: true, MinOccurred: day, MaxOccurred: day, HasNullOccurred: true}, []string{"BETWEEN", "OR T.occurred_at IS NULL"}, nil},
		// 0001-01-01 00:00:00 UTC is the zero time.Time and a storable occurred_at: still a range.
		{load.Batch{HasOccurred: true}, []string{"T.occurred_at BETWEEN TIMESTAMP '0001-01-01 00:00:00' AND TIMESTAMP '0001-01-01 00:00:00'"}, []string{"IS NULL"}},
		{load.Batch{HasNullOccurred: true}, []string{"(T.occurred_at IS NULL)"}, []string{"BETWEEN"}},
	}
	for _, tc := range tests {
		q := w.mergeSQL("events", "_dedup", pruneSQL(tc.batch))
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
