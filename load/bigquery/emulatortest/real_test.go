package emulatortest

import (
	"context"
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
// partitioning, resumable uploads and 409s, and deletes it afterwards.
func TestRealBigQuery(t *testing.T) {
	projectID := os.Getenv("SENDPILOT_TEST_BIGQUERY_PROJECT")
	if projectID == "" {
		t.Skip("set SENDPILOT_TEST_BIGQUERY_PROJECT to run against real BigQuery")
	}
	ctx := context.Background()
	ds := fmt.Sprintf("sendpilot_test_%d", time.Now().UnixNano())
	w, err := bigquery.New(ctx, bigquery.Config{Project: projectID, Dataset: ds, Location: os.Getenv("SENDPILOT_TEST_BIGQUERY_LOCATION")})
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
		if _, err := w.Load(ctx, b); err != nil {
			t.Fatal(err)
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
}
