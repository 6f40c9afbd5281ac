package emulatortest

import (
	"context"
	"fmt"
	"testing"

	bq "cloud.google.com/go/bigquery"
	"github.com/goccy/bigquery-emulator/server"
	"github.com/goccy/bigquery-emulator/types"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"sendpilot-loader/load"
	"sendpilot-loader/load/bigquery"
	"sendpilot-loader/load/loadtest"
)

const (
	project = "sendpilot-test"
	dataset = "sendpilot"
)

// emulator starts goccy/bigquery-emulator in process on a loopback port and returns client options for it and
// its URL.
func emulator(t *testing.T) ([]option.ClientOption, string) {
	t.Helper()
	srv, err := server.New(server.TempStorage)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Load(server.StructSource(types.NewProject(project))); err != nil {
		t.Fatal(err)
	}
	ts := srv.TestServer()
	t.Cleanup(func() {
		ts.Close()
		srv.Stop(context.Background())
	})
	return []option.ClientOption{option.WithEndpoint(ts.URL), option.WithoutAuthentication()}, ts.URL
}

func warehouse(t *testing.T, opts []option.ClientOption) *bigquery.Warehouse {
	t.Helper()
	// The emulator breaks resumable uploads over 16 MiB; real BigQuery does not need this.
	w, err := bigquery.New(context.Background(), bigquery.Config{Project: project, Dataset: dataset, SingleRequestUpload: true}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func query(t *testing.T, opts []option.ClientOption, q string) []bq.Value {
	t.Helper()
	c, err := bq.NewClient(context.Background(), project, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	it, err := c.Query(q).Read(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	var row []bq.Value
	if err := it.Next(&row); err != nil && err != iterator.Done {
		t.Fatalf("%s: %v", q, err)
	}
	return row
}

const (
	evA = `{"eventId":"evt_a","eventType":"message.sent","timestamp":"2024-02-24T10:30:00Z","data":{"leadId":"l1","message":"hi"}}`
	evB = `{"eventId":"evt_b","eventType":"lead_extractor.job.completed","timestamp":"2024-02-25T11:00:00Z","data":{"campaign_id":"c","leads":[{"id":"x","experience":[{"title":"CEO"},{"title":"CTO"}],"education":[{"school":"MIT"}],"skills":["Go","SQL"]},{"id":"y"}]}}`
	evC = `{"eventId":"evt_c","eventType":"never.seen","data":{"n":12345678901234567890}}`
)

// The same event delivered three times, across batches and inside one, is stored once with its children, and
// loading a batch again (a retry after a crash) changes nothing.
func TestLoadIsExactlyOnce(t *testing.T) {
	opts, _ := emulator(t)
	w := warehouse(t, opts)
	ctx := context.Background()
	if err := w.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Ensure(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
	b1 := loadtest.BatchFrom(t, "inst-0000000001-0000000001", evA, evB, evB)
	b2 := loadtest.BatchFrom(t, "inst-0000000002-0000000002", evB, evC)
	for _, b := range []load.Batch{b1, b1, b2, b2} {
		if _, err := w.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for q, want := range map[string]int64{
		"SELECT COUNT(*) FROM sendpilot.events":                                            3,
		"SELECT COUNT(DISTINCT event_id) FROM sendpilot.events":                            3,
		"SELECT COUNT(*) FROM sendpilot.leads":                                             2,
		"SELECT COUNT(*) FROM sendpilot.experience":                                        2,
		"SELECT COUNT(*) FROM sendpilot.education":                                         1,
		"SELECT ARRAY_LENGTH(skills) FROM sendpilot.leads WHERE lead_id = 'x'":             2,
		"SELECT COUNT(*) FROM sendpilot.events WHERE event_type = 'unknown'":               1,
		"SELECT COUNT(*) FROM sendpilot.events WHERE JSON_VALUE(data, '$.message') = 'hi'": 1,
	} {
		row := query(t, opts, q)
		if len(row) != 1 || fmt.Sprint(row[0]) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %d", q, row, want)
		}
	}
}
