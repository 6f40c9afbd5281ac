package emulatortest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/api/option"

	"sendpilot-loader/load"
	"sendpilot-loader/load/bigquery"
	"sendpilot-loader/load/loadtest"
)

// faultProxy sits between the client and the emulator and injects what the emulator cannot show: 5xx and 429
// answers to job requests, and the 409 BigQuery gives when a job ID is reused (the emulator answers 500). It is
// a fake for fault injection only; the data path is the real emulator.
type faultProxy struct {
	failAt   atomic.Int64 // the number of one job insert to answer with status (1 is the first); 0 for none
	failures atomic.Int64 // job inserts to answer with status, before forwarding anything
	status   int
	conflict atomic.Int64 // job inserts to forward and then answer 409, as if a retried request found its job
	// cutAt is the number of one job insert to forward with only the first half of its body and then answer
	// 503, as a connection lost in the middle of an upload would leave it; 0 for none.
	cutAt   atomic.Int64
	inserts atomic.Int64
}

func (f *faultProxy) start(t *testing.T, target string) []option.ClientOption {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		insert := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/jobs")
		if insert {
			n := f.inserts.Add(1)
			if f.failures.Add(-1) >= 0 || n == f.failAt.Load() {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(f.status)
				fmt.Fprintf(w, `{"error":{"code":%d,"message":"injected","errors":[{"reason":"backendError","message":"injected"}]}}`, f.status)
				return
			}
			if n == f.cutAt.Load() {
				body, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body[:len(body)/2]))
				r.ContentLength = int64(len(body) / 2)
				rp.ServeHTTP(httptest.NewRecorder(), r)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `{"error":{"code":503,"message":"injected","errors":[{"reason":"backendError","message":"connection lost"}]}}`)
				return
			}
			if f.conflict.Add(-1) >= 0 {
				rec := httptest.NewRecorder()
				rp.ServeHTTP(rec, r)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusConflict)
				fmt.Fprint(w, `{"error":{"code":409,"message":"Already Exists: Job","errors":[{"reason":"duplicate","message":"Already Exists"}]}}`)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return []option.ClientOption{option.WithEndpoint(srv.URL), option.WithoutAuthentication()}
}

// behindProxy starts an emulator and a fault proxy in front of it that answers faults with status, and returns
// client options for the emulator itself, the proxy, and a warehouse (tables created) that talks through it.
func behindProxy(t *testing.T, status int) ([]option.ClientOption, *faultProxy, *bigquery.Warehouse) {
	t.Helper()
	direct, endpoint := emulator(t)
	proxy := &faultProxy{status: status}
	opts := proxy.start(t, endpoint)
	w, err := bigquery.New(context.Background(), bigquery.Config{Project: project, Dataset: dataset, SingleRequestUpload: true, UploadAttempts: 1}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := w.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	proxy.inserts.Store(0) // count the jobs of loads only, not those that created the views
	return direct, proxy, w
}

// 500 and 429 answers fail the load without losing or doubling anything; the next try finishes the batch and
// a 409 for a job that the failed request did create makes the warehouse wait on that job, not rerun it.
func TestTransientFaultsAndReusedJobIDs(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusTooManyRequests} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			direct, proxy, w := behindProxy(t, status)
			ctx := context.Background()
			b := loadtest.BatchFrom(t, "inst-0000000001-0000000002", evA, evB)
			proxy.failures.Store(2)
			if _, err := w.Load(ctx, b); err == nil || errors.Is(err, load.ErrRejected) {
				t.Fatalf("load during injected %d: %v, want a transient error", status, err)
			}
			proxy.conflict.Store(3)
			for attempt := 0; ; attempt++ {
				_, err := w.Load(ctx, b)
				if err == nil {
					break
				}
				if attempt == 5 || errors.Is(err, load.ErrRejected) {
					t.Fatalf("load after the fault: %v", err)
				}
			}
			if proxy.conflict.Load() >= 0 {
				t.Fatalf("the injected 409s were not all used (%d left)", proxy.conflict.Load())
			}
			for q, want := range map[string]string{
				"SELECT COUNT(*) FROM sendpilot.events":     "2",
				"SELECT COUNT(*) FROM sendpilot.leads":      "2",
				"SELECT COUNT(*) FROM sendpilot.experience": "2",
			} {
				if row := query(t, direct, q); fmt.Sprint(row[0]) != want {
					t.Errorf("%s = %v, want %s", q, row, want)
				}
			}
		})
	}
}

// A load interrupted part way (here: an upload fails after other tables' jobs finished, as a crash would leave
// it) resumes without running the finished jobs again: the retry finds them by their IDs. (Failed query job
// inserts are retried inside the client library, so uploads are where a load stops.)
func TestInterruptedLoadResumesWithoutRerunningJobs(t *testing.T) {
	for _, failAt := range []int64{4, 7, 10} { // the uploads of leads, experience and education
		t.Run(fmt.Sprint(failAt), func(t *testing.T) {
			direct, proxy, w := behindProxy(t, http.StatusServiceUnavailable)
			ctx := context.Background()
			b := loadtest.BatchFrom(t, "inst-0000000003-0000000003", evA, evB)
			proxy.failAt.Store(failAt)
			if _, err := w.Load(ctx, b); err == nil {
				t.Fatalf("load with insert %d failing succeeded", failAt)
			}
			before := proxy.inserts.Load()
			if _, err := w.Load(ctx, b); err != nil {
				t.Fatal(err)
			}
			// events, leads, experience and education have rows: 4 tables x 3 jobs, of which before-1 had run.
			if reran := proxy.inserts.Load() - before; reran != 12-(before-1) {
				t.Errorf("the retry inserted %d jobs, want %d (only the ones not done yet)", reran, 12-(before-1))
			}
			if row := query(t, direct, "SELECT COUNT(*) FROM sendpilot.leads"); fmt.Sprint(row[0]) != "2" {
				t.Errorf("leads = %v, want 2", row)
			}
		})
	}
}

// Ensure replaces a view only when its SQL changed: once the views exist, it runs no job at all (a load runs
// Ensure every time, and BigQuery counts each DDL job).
func TestEnsureLeavesUnchangedViewsAlone(t *testing.T) {
	_, proxy, w := behindProxy(t, http.StatusServiceUnavailable)
	if err := w.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := proxy.inserts.Load(); n != 0 {
		t.Errorf("Ensure over existing views ran %d jobs, want 0", n)
	}
}

// An upload cut off half way can leave a load job behind whose data never arrived (the emulator records the
// job before it reads the data). The warehouse must notice that the staging table lacks rows and load it again,
// not merge what little arrived.
func TestCutUploadIsLoadedAgain(t *testing.T) {
	for _, cutAt := range []int64{1, 4} { // the uploads of events and of leads
		t.Run(fmt.Sprint(cutAt), func(t *testing.T) {
			direct, proxy, w := behindProxy(t, http.StatusServiceUnavailable)
			ctx := context.Background()
			b := loadtest.BatchFrom(t, "inst-0000000004-0000000004", evA, evB)
			proxy.cutAt.Store(cutAt)
			for attempt := 0; ; attempt++ {
				_, err := w.Load(ctx, b)
				if err == nil {
					break
				}
				if attempt == 3 {
					t.Fatalf("load after a cut upload: %v", err)
				}
			}
			for q, want := range map[string]string{
				"SELECT COUNT(*) FROM sendpilot.events":     "2",
				"SELECT COUNT(*) FROM sendpilot.leads":      "2",
				"SELECT COUNT(*) FROM sendpilot.experience": "2",
			} {
				if row := query(t, direct, q); fmt.Sprint(row[0]) != want {
					t.Errorf("%s = %v, want %s", q, row, want)
				}
			}
		})
	}
}
