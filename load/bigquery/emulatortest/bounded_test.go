package emulatortest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	bq "cloud.google.com/go/bigquery"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"sendpilot-loader/load"
	"sendpilot-loader/load/bigquery"
	"sendpilot-loader/load/loadtest"
)

// guard is how long a test lets a load run before it counts as hung: far above the warehouse's own step
// deadline, so a load that returns before it did not wait without a bound.
const guard = 2 * time.Minute

// boundedWarehouse is a warehouse through the proxy with short deadlines and backoffs, so that a fault
// resolves in seconds. The dataset is created first, directly in the emulator, in location when it is set.
func boundedWarehouse(t *testing.T, direct, opts []option.ClientOption, location string, cfg bigquery.Config) *bigquery.Warehouse {
	t.Helper()
	if location != "" {
		c, err := bq.NewClient(context.Background(), project, direct...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Dataset(dataset).Create(context.Background(), &bq.DatasetMetadata{Location: location}); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Project, cfg.Dataset, cfg.SingleRequestUpload = project, dataset, true
	cfg.UploadAttempts, cfg.Backoff, cfg.PollInterval = 1, 10*time.Millisecond, 20*time.Millisecond
	if cfg.StepTimeout == 0 {
		cfg.StepTimeout = 20 * time.Second
	}
	w, err := bigquery.New(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// proxied starts an emulator and the fault proxy, and returns client options for both.
func proxied(t *testing.T) (direct []option.ClientOption, proxy *faultProxy, opts []option.ClientOption) {
	t.Helper()
	direct, endpoint := emulator(t)
	proxy = &faultProxy{status: http.StatusServiceUnavailable}
	return direct, proxy, proxy.start(t, endpoint)
}

// event is one outreach event with its own ID.
func event(id string) string {
	return fmt.Sprintf(`{"eventId":%q,"eventType":"message.sent","timestamp":"2024-03-01T09:00:00Z","data":{"leadId":"l1","message":"hi"}}`, id)
}

// loadUntil loads b until it succeeds, at most tries times, and returns the errors of the failed tries. Every
// failure must be transient (neither rejected nor systemic), and every try must end before the guard.
func loadUntil(t *testing.T, ctx context.Context, w *bigquery.Warehouse, b load.Batch, tries int) []error {
	t.Helper()
	var failed []error
	for range tries {
		_, err := w.Load(ctx, b)
		if ctx.Err() != nil {
			t.Fatalf("load still waiting at the test's guard of %s: %v", guard, err)
		}
		if err == nil {
			return failed
		}
		if errors.Is(err, load.ErrRejected) || errors.Is(err, load.ErrSystemic) {
			t.Fatalf("a transient fault gave a rejected or systemic error: %v", err)
		}
		failed = append(failed, err)
	}
	t.Fatalf("batch %s not loaded after %d tries: %v", b.ID, tries, failed)
	return nil
}

func countEvent(t *testing.T, direct []option.ClientOption, id string) string {
	t.Helper()
	return fmt.Sprint(query(t, direct, "SELECT COUNT(*) FROM sendpilot.events WHERE event_id = '"+id+"'")[0])
}

// A dedup or MERGE job that fails with any of BigQuery's transient reasons neither hangs the load (BigQuery
// answers getQueryResults of such a job with the error as HTTP status, which the client library retries
// forever for backendError, internalError and rateLimitExceeded) nor moves the batch aside: the load returns
// a transient error under its deadline, and the next load replaces the failed job and loads the batch.
func TestQueryJobTransientReasons(t *testing.T) {
	reasons := []jobFault{
		{status: 503, reason: "backendError", message: "Error encountered during execution. Retrying may solve the problem."},
		{status: 500, reason: "internalError", message: "An internal error occurred and the request could not be completed."},
		{status: 403, reason: "rateLimitExceeded", message: "Exceeded rate limits: too many api requests per user per method for this user_method."},
		{status: 400, reason: "jobBackendError", message: "The job encountered an error during execution. Retrying the job may solve the problem."},
		{status: 400, reason: "jobInternalError", message: "The job encountered an internal error during execution and was unable to complete successfully."},
		{status: 400, reason: "jobRateLimitExceeded", message: "Exceeded rate limits: too many concurrent queries for this project_and_region."},
		{status: 403, reason: "quotaExceeded", message: "Exceeded rate limits: too many table update operations for this table."},
		{status: 400, reason: "resourcesExceeded", message: "Resources exceeded during query execution: Too many DML statements outstanding against table sendpilot-test:sendpilot.events, limit is 20."},
		{status: 400, reason: "invalidQuery", message: "Could not serialize access to table sendpilot-test:sendpilot.events due to concurrent update"},
		{status: 400, reason: "invalidQuery", message: "Transaction is aborted due to concurrent update against table sendpilot-test:sendpilot.events."},
	}
	direct, proxy, opts := proxied(t)
	w := boundedWarehouse(t, direct, opts, "", bigquery.Config{})
	if err := w.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, fault := range reasons {
		for _, step := range []string{"MERGE", "ROW_NUMBER"} { // the merge, and the dedup before it
			t.Run(fmt.Sprintf("%s/%s/%d", fault.reason, step, i), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), guard)
				defer cancel()
				id := fmt.Sprintf("evt_%s_%s_%d", fault.reason, step, i)
				b := loadtest.BatchFrom(t, fmt.Sprintf("inst-%010d-%010d", 100+i, len(step)), event(id))
				fault.match, fault.times = step, 1
				proxy.failQueries(fault)
				if failed := loadUntil(t, ctx, w, b, 3); len(failed) != 1 {
					t.Errorf("loads failed %d times, want once (the injected fault): %v", len(failed), failed)
				}
				if left := proxy.faultsLeft(); left != 0 {
					t.Fatalf("%d injected faults never reached a job", left)
				}
				if got := countEvent(t, direct, id); got != "1" {
					t.Errorf("event %s stored %s times, want 1", id, got)
				}
			})
		}
	}
}

// Two replicas merge the same event: BigQuery may refuse one MERGE with "Could not serialize access … due to
// concurrent update", here twice in a row while the other replica's load of the event commits in between. The
// refused MERGE is retried as a fresh job, finds the key there, and the event is stored once.
func TestMergeConflictsTwiceThenSucceeds(t *testing.T) {
	direct, proxy, opts := proxied(t)
	w := boundedWarehouse(t, direct, opts, "", bigquery.Config{})
	if err := w.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	other := warehouse(t, direct) // the other replica, straight to the emulator
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	proxy.failQueries(jobFault{match: "MERGE", times: 2, status: 400, reason: "invalidQuery",
		message: "Could not serialize access to table sendpilot-test:sendpilot.events due to concurrent update"})
	mine := loadtest.BatchFrom(t, "inst-0000000200-0000000001", event("evt_shared"), event("evt_mine"))
	if _, err := w.Load(ctx, mine); err == nil || errors.Is(err, load.ErrRejected) || errors.Is(err, load.ErrSystemic) {
		t.Fatalf("first merge under conflict: %v, want a transient error", err)
	}
	if _, err := other.Load(ctx, loadtest.BatchFrom(t, "inst-0000000300-0000000001", event("evt_shared"))); err != nil {
		t.Fatal(err)
	}
	if failed := loadUntil(t, ctx, w, mine, 3); len(failed) != 1 {
		t.Errorf("loads after the other replica's commit failed %d times, want once: %v", len(failed), failed)
	}
	for id, want := range map[string]string{"evt_shared": "1", "evt_mine": "1"} {
		if got := countEvent(t, direct, id); got != want {
			t.Errorf("event %s stored %s times, want %s", id, got, want)
		}
	}
}

// With bigquery.location unset, BigQuery answers a job look-up without a location with 404 for a job in a
// single-region dataset, and an insert of that job with 409. The warehouse reads the dataset's location in
// Ensure and names it in every look-up, so a second load of a batch finds every job and runs none again. When a
// job exists (409) but can still not be found, the load stops after a bounded number of look-ups, with a
// systemic error: no loop, no upload after upload.
func TestJobLookupsNameTheDatasetLocation(t *testing.T) {
	direct, proxy, opts := proxied(t)
	w := boundedWarehouse(t, direct, opts, "asia-northeast1", bigquery.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	proxy.lookupsNeedLocation.Store(true)
	if err := w.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	b := loadtest.BatchFrom(t, "inst-0000000400-0000000001", event("evt_located"))
	if _, err := w.Load(ctx, b); err != nil {
		t.Fatal(err)
	}
	before := proxy.inserts.Load()
	if _, err := w.Load(ctx, b); err != nil {
		t.Fatalf("loading the batch again: %v", err)
	}
	if n := proxy.inserts.Load() - before; n != 0 {
		t.Errorf("loading a loaded batch again inserted %d jobs, want 0", n)
	}

	proxy.lookupsFail.Store(true) // every job now looks as if it lived elsewhere
	before = proxy.inserts.Load()
	_, err := w.Load(ctx, b)
	if ctx.Err() != nil {
		t.Fatalf("load still looping at the guard: %v", err)
	}
	if !errors.Is(err, load.ErrSystemic) || errors.Is(err, load.ErrRejected) {
		t.Fatalf("load with jobs that exist but cannot be found: %v, want a systemic error", err)
	}
	if n := proxy.inserts.Load() - before; n != 1 {
		t.Errorf("the load tried to insert %d jobs, want 1 (then it looks for the existing one and stops)", n)
	}
	if got := countEvent(t, direct, "evt_located"); got != "1" {
		t.Errorf("event stored %s times, want 1", got)
	}
}

// An upload that stalls ends at the step deadline with a transient error instead of hanging the load, and
// the next load uploads the file and loads the batch.
func TestStalledUploadEndsAtItsDeadline(t *testing.T) {
	direct, proxy, opts := proxied(t)
	w := boundedWarehouse(t, direct, opts, "", bigquery.Config{StepTimeout: 3 * time.Second})
	if err := w.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	proxy.stall.Store(1)
	b := loadtest.BatchFrom(t, "inst-0000000500-0000000001", event("evt_stalled"))
	if failed := loadUntil(t, ctx, w, b, 3); len(failed) != 1 {
		t.Errorf("loads failed %d times, want once (the stalled upload): %v", len(failed), failed)
	} else if !errors.Is(failed[0], context.DeadlineExceeded) {
		t.Errorf("the stalled upload ended with %v, want the step deadline", failed[0])
	}
	if proxy.stall.Load() >= 0 {
		t.Fatal("the upload was never stalled")
	}
	if got := countEvent(t, direct, "evt_stalled"); got != "1" {
		t.Errorf("event stored %s times, want 1", got)
	}
}

// A staging bucket in a location BigQuery cannot load from into the dataset (here EU for a dataset in Tokyo;
// real BigQuery would fail each load job with "Cannot read and write in different locations") is systemic:
// Ensure and Load say so before any job runs, nothing is uploaded and nothing is rejected.
func TestWrongLocationBucketPausesLoads(t *testing.T) {
	gcs := stagingBucket(t, "EU")
	direct, proxy, opts := proxied(t)
	w := boundedWarehouse(t, direct, opts, "asia-northeast1", bigquery.Config{Bucket: "staging"})
	ctx := context.Background()
	err := w.Ensure(ctx)
	if !errors.Is(err, load.ErrSystemic) || errors.Is(err, load.ErrRejected) || !strings.Contains(err.Error(), "EU") {
		t.Fatalf("Ensure with an EU bucket for a Tokyo dataset: %v, want a systemic error naming the bucket's location", err)
	}
	_, err = w.Load(ctx, loadtest.BatchFrom(t, "inst-0000000600-0000000001", event("evt_elsewhere")))
	if !errors.Is(err, load.ErrSystemic) || errors.Is(err, load.ErrRejected) {
		t.Fatalf("Load with an EU bucket for a Tokyo dataset: %v, want a systemic error", err)
	}
	if n := proxy.inserts.Load(); n != 0 {
		t.Errorf("%d jobs inserted, want none", n)
	}
	objs, _, err := gcs.ListObjectsWithOptions("staging", fakestorage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Errorf("%d objects in the staging bucket, want only the one put there before", len(objs))
	}
}

// A MERGE that fails systemically (a column type that differs from the table's) pauses loads without moving the
// batch aside, and once the cause is gone the next load replaces the failed job and loads the batch: a failed
// job found from an earlier run is never taken as the batch's answer.
func TestSystemicJobFailureResumesAfterTheFix(t *testing.T) {
	direct, proxy, opts := proxied(t)
	w := boundedWarehouse(t, direct, opts, "", bigquery.Config{})
	if err := w.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	proxy.failQueries(jobFault{match: "MERGE", times: 1, status: 400, reason: "invalidQuery",
		message: "Query column 9 has type STRING which cannot be inserted into column data, which has type JSON at [1:412]"})
	b := loadtest.BatchFrom(t, "inst-0000000700-0000000001", event("evt_paused"))
	if _, err := w.Load(ctx, b); !errors.Is(err, load.ErrSystemic) || errors.Is(err, load.ErrRejected) {
		t.Fatalf("load with a MERGE refused for a type difference: %v, want a systemic error", err)
	}
	if _, err := w.Load(ctx, b); err != nil {
		t.Fatalf("load after the fix: %v", err)
	}
	if got := countEvent(t, direct, "evt_paused"); got != "1" {
		t.Errorf("event stored %s times, want 1", got)
	}
}

// A step that failed many times in a row is found at its last attempt (a few look-ups, doubling then
// bisecting) and replaced by the next, each load creating one new job, until one succeeds.
func TestManyFailedAttemptsAreEachReplaced(t *testing.T) {
	direct, proxy, opts := proxied(t)
	w := boundedWarehouse(t, direct, opts, "", bigquery.Config{})
	if err := w.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	proxy.failQueries(jobFault{match: "MERGE", times: 6, status: 503, reason: "backendError", message: "Error encountered during execution. Retrying may solve the problem."})
	b := loadtest.BatchFrom(t, "inst-0000000800-0000000001", event("evt_persistent"))
	if failed := loadUntil(t, ctx, w, b, 8); len(failed) != 6 {
		t.Errorf("loads failed %d times, want 6 (each injected fault once): %v", len(failed), failed)
	}
	if got := countEvent(t, direct, "evt_persistent"); got != "1" {
		t.Errorf("event stored %s times, want 1", got)
	}
}
