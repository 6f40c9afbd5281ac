package emulatortest

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"sendpilot-loader/load/bigquery"
	"sendpilot-loader/load/loadtest"
)

// stagingBucket starts fsouza/fake-gcs-server on loopback with a bucket "staging" holding one object "keep", its
// buckets in location (the fake's default when empty), and points STORAGE_EMULATOR_HOST at it for the test.
func stagingBucket(t *testing.T, location string) *fakestorage.Server {
	t.Helper()
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Host: "127.0.0.1", Scheme: "http", PublicHost: "127.0.0.1", BucketsLocation: location,
		InitialObjects: []fakestorage.Object{{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "staging", Name: "keep"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gcs.Stop)
	u, _ := url.Parse(gcs.URL())
	t.Setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:"+u.Port())
	return gcs
}

// With a staging bucket, Parquet files go to Cloud Storage and the load jobs read them from there. The bucket is
// fsouza/fake-gcs-server on loopback; the emulator and our storage client both find it through
// STORAGE_EMULATOR_HOST.
func TestLoadThroughGCSBucket(t *testing.T) {
	gcs := stagingBucket(t, "")
	opts, _ := emulator(t)
	ctx := context.Background()
	w, err := bigquery.New(ctx, bigquery.Config{Project: project, Dataset: dataset, Bucket: "staging"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	b := loadtest.BatchFrom(t, "inst-0000000009-0000000009", evA, evB, evB)
	for range 2 {
		if _, err := w.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for q, want := range map[string]string{
		"SELECT COUNT(*) FROM sendpilot.events":    "2",
		"SELECT COUNT(*) FROM sendpilot.leads":     "2",
		"SELECT COUNT(*) FROM sendpilot.education": "1",
	} {
		if row := query(t, opts, q); fmt.Sprint(row[0]) != want {
			t.Errorf("%s = %v, want %s", q, row, want)
		}
	}
	objs, _, err := gcs.ListObjectsWithOptions("staging", fakestorage.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Name != "keep" {
		t.Errorf("staging objects left behind: %d", len(objs))
	}
	// The data really goes through the bucket: without one, the load cannot stage.
	nowhere, err := bigquery.New(ctx, bigquery.Config{Project: project, Dataset: dataset, Bucket: "no-such-bucket", UploadAttempts: 1}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nowhere.Close()
	if _, err := nowhere.Load(ctx, loadtest.BatchFrom(t, "inst-0000000010-0000000010", evC)); err == nil {
		t.Error("load through a missing bucket succeeded")
	}
}
