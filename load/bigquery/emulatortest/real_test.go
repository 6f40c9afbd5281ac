package emulatortest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	bq "cloud.google.com/go/bigquery"

	"sendpilot-loader/load"
	"sendpilot-loader/load/bigquery"
	"sendpilot-loader/load/loadtest"
)

// TestRealBigQuery runs the exactly-once check against real BigQuery when SENDPILOT_TEST_BIGQUERY_PROJECT names
// a project (credentials from Application Default Credentials). It creates a dataset of its own, with real
// partitioning, resumable uploads and 409s, and deletes it afterwards. It also goes through what the emulator
// cannot show: a second warehouse with no location configured reads the dataset's location (set
// SENDPILOT_TEST_BIGQUERY_LOCATION to a single region such as asia-northeast1 to make job look-ups without it
// fail) and finds every job of a loaded batch; a missing dataset is a systemic error from BigQuery's real
// answer; and with SENDPILOT_TEST_BIGQUERY_BUCKET, the batch goes through that staging bucket, or fails
// systemic before any job when the bucket is in a location BigQuery cannot load from; and every merge reports
// the bytes it read. docs/real-bigquery-test.md says how to run it.
func TestRealBigQuery(t *testing.T) {
	projectID := os.Getenv("SENDPILOT_TEST_BIGQUERY_PROJECT")
	if projectID == "" {
		t.Skip("set SENDPILOT_TEST_BIGQUERY_PROJECT to run against real BigQuery")
	}
	ctx := context.Background()
	ds := fmt.Sprintf("sendpilot_test_%d", time.Now().UnixNano())
	location, bucket := os.Getenv("SENDPILOT_TEST_BIGQUERY_LOCATION"), os.Getenv("SENDPILOT_TEST_BIGQUERY_BUCKET")
	step := bigquery.Config{StepTimeout: 5 * time.Minute, PollInterval: 500 * time.Millisecond}
	w, err := bigquery.New(ctx, bigquery.Config{Project: projectID, Dataset: ds, Location: location,
		StepTimeout: step.StepTimeout, PollInterval: step.PollInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c, err := bq.NewClient(ctx, projectID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer c.Dataset(ds).DeleteWithContents(ctx)
	if err := w.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	b1 := loadtest.BatchFrom(t, "real-0000000001-0000000001", evA, evB, evB)
	b2 := loadtest.BatchFrom(t, "real-0000000002-0000000002", evB, evC)
	for _, b := range []load.Batch{b1, b1, b2} {
		res, err := w.Load(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		// Every merge reads at least the staged batch, and its job statistics say how much.
		for table, rows := range b.Rows {
			if rows > 0 && res.BytesRead[table] <= 0 {
				t.Errorf("batch %s: the %s merge read %d bytes, want its job statistics' positive figure", b.ID, table, res.BytesRead[table])
			}
		}
	}
	it, err := c.Query(fmt.Sprintf("SELECT (SELECT COUNT(*) FROM `%s.events`), (SELECT COUNT(*) FROM `%s.leads`)", ds, ds)).Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var row []bq.Value
	if err := it.Next(&row); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(row) != "[3 2]" {
		t.Fatalf("events, leads = %v, want [3 2]", row)
	}

	// No location configured: the warehouse reads the dataset's and finds the jobs of b1 instead of making them.
	unset, err := bigquery.New(ctx, bigquery.Config{Project: projectID, Dataset: ds, StepTimeout: step.StepTimeout, PollInterval: step.PollInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer unset.Close()
	if err := unset.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := unset.Load(ctx, b1); err != nil {
		t.Fatalf("loading a loaded batch again with no location configured: %v", err)
	}

	// A dataset that does not exist: BigQuery's 404 notFound is systemic, not a rejection of the batch.
	missing, err := bigquery.New(ctx, bigquery.Config{Project: projectID, Dataset: ds + "_missing", StepTimeout: step.StepTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer missing.Close()
	if _, err := missing.Load(ctx, b2); !errors.Is(err, load.ErrSystemic) || errors.Is(err, load.ErrRejected) {
		t.Fatalf("load into a missing dataset: %v, want a systemic error", err)
	}

	if bucket == "" {
		return
	}
	staged, err := bigquery.New(ctx, bigquery.Config{Project: projectID, Dataset: ds, Bucket: bucket, Prefix: ds,
		StepTimeout: step.StepTimeout, PollInterval: step.PollInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer staged.Close()
	err = staged.Ensure(ctx)
	if errors.Is(err, load.ErrSystemic) {
		t.Logf("bucket %s cannot feed the dataset's location, as the warehouse says before any job: %v", bucket, err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := staged.Load(ctx, loadtest.BatchFrom(t, "real-0000000003-0000000003", evA, evC)); err != nil {
		t.Fatalf("load through gs://%s: %v", bucket, err)
	}
}
