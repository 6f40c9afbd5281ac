package emulatortest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/api/option"

	"sendpilot-loader/load"
	"sendpilot-loader/load/bigquery"
	"sendpilot-loader/load/loadtest"
)

// faultProxy sits between the client and the emulator and injects what the emulator cannot show: 5xx and 429
// answers to job requests, the 409 BigQuery gives when a job ID is reused (the emulator answers 500), query jobs
// that fail with BigQuery's error reasons, job look-ups that BigQuery answers 404 (no location given, or a job
// in another location), and uploads that stall. It is a fake for fault injection only; the data path is the
// real emulator. What each fault imitates is said at its field, after BigQuery's documentation
// (https://cloud.google.com/bigquery/docs/error-messages, https://cloud.google.com/bigquery/docs/locations).
type faultProxy struct {
	failAt   atomic.Int64 // the number of one job insert to answer with status (1 is the first); 0 for none
	failures atomic.Int64 // job inserts to answer with status, before forwarding anything
	status   int
	conflict atomic.Int64 // job inserts to forward and then answer 409, as if a retried request found its job
	// cutAt is the number of one job insert to forward with only the first half of its body and then answer
	// 503, as a connection lost in the middle of an upload would leave it; 0 for none.
	cutAt   atomic.Int64
	inserts atomic.Int64
	// stall is the number of uploads to hold without an answer until the client gives up, as a transfer that
	// stops mid-way leaves a request.
	stall atomic.Int64
	// lookupsNeedLocation answers 404 to a jobs.get without a location, as BigQuery does for a job outside the
	// US and EU multi-regions (https://cloud.google.com/bigquery/docs/locations#specify_locations).
	lookupsNeedLocation atomic.Bool
	// lookupsFail answers 404 to every jobs.get, as BigQuery does when the job lives in another location than
	// the one asked for.
	lookupsFail atomic.Bool

	// refuseRows, when set, fails every load job whose uploaded file holds these bytes the way BigQuery fails
	// a load job over a value it cannot read: the job is accepted and ends DONE with reason "invalid" and a
	// message naming the row (https://cloud.google.com/bigquery/docs/error-messages#invalid).
	refuseRows []byte

	mu sync.Mutex
	// mergeBytes, per table, is the statistics.query.totalBytesProcessed that jobs.get shows for that table's
	// merge jobs. The emulator counts only the bytes of a query's result rows, so its MERGE jobs (no result
	// rows) show none; BigQuery shows the bytes the statement read, for a script the total of its statements
	// (https://cloud.google.com/bigquery/docs/reference/rest/v2/Job#JobStatistics2).
	mergeBytes map[string]int64
	// queries are the bodies of the query job inserts forwarded to the emulator, in order.
	queries []string
	// queryFaults fail the next query jobs whose SQL holds their match (see jobFault).
	queryFaults []*jobFault
	failed      map[string]*jobFault // job ID → the fault it failed with
	created     map[string]bool      // job IDs whose insert the emulator accepted: reusing one answers 409
}

// jobFault makes query jobs fail as BigQuery fails them: jobs.insert accepts the job (RUNNING), jobs.get then
// shows it DONE with errorResult {reason, message}, and jobs.getQueryResults answers the same error as HTTP
// status (BigQuery returns a failed query's error from getQueryResults as an HTTP error).
type jobFault struct {
	match           string // a substring of the query, e.g. "MERGE" or "ROW_NUMBER"
	times           int    // how many jobs to fail
	status          int
	reason, message string
}

var (
	jobIDField = regexp.MustCompile(`"jobId":\s*"([^"]+)"`)
	jobGet     = regexp.MustCompile(`/projects/[^/]+/jobs/([^/]+)$`)
	queryGet   = regexp.MustCompile(`/projects/[^/]+/queries/([^/]+)$`)
)

// failQueries adds a fault for the next query jobs.
func (f *faultProxy) failQueries(fault jobFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queryFaults = append(f.queryFaults, &fault)
}

// faultsLeft is the number of query jobs still to fail.
func (f *faultProxy) faultsLeft() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, q := range f.queryFaults {
		n += q.times
	}
	return n
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func errorBody(status int, reason, message string) string {
	return fmt.Sprintf(`{"error":{"code":%d,"message":%q,"errors":[{"reason":%q,"message":%q,"domain":"global"}]}}`, status, message, reason, message)
}

func (f *faultProxy) start(t *testing.T, target string) []option.ClientOption {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	f.failed, f.created = map[string]*jobFault{}, map[string]bool{}
	rp := httputil.NewSingleHostReverseProxy(u)
	quit := make(chan struct{}) // closed at the end of the test, so that no held request outlives it
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := jobGet.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
			f.mu.Lock()
			fault := f.failed[m[1]]
			f.mu.Unlock()
			switch {
			case fault != nil:
				writeJSON(w, http.StatusOK, fmt.Sprintf(`{"kind":"bigquery#job","jobReference":{"projectId":%q,"jobId":%q,"location":%q},`+
					`"configuration":{"jobType":"QUERY","query":{"query":"injected"}},"status":{"state":"DONE","errorResult":{"reason":%q,"message":%q},"errors":[{"reason":%q,"message":%q}]}}`,
					project, m[1], r.URL.Query().Get("location"), fault.reason, fault.message, fault.reason, fault.message))
				return
			case f.lookupsFail.Load() || (f.lookupsNeedLocation.Load() && r.URL.Query().Get("location") == ""):
				writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "notFound", "Not found: Job "+project+":"+m[1]))
				return
			}
			if n, ok := f.mergeBytesOf(m[1]); ok {
				rec := httptest.NewRecorder()
				rp.ServeHTTP(rec, r)
				writeJSON(w, rec.Code, withBytesProcessed(t, rec.Body.Bytes(), n))
				return
			}
		}
		if m := queryGet.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
			f.mu.Lock()
			fault := f.failed[m[1]]
			f.mu.Unlock()
			if fault != nil {
				writeJSON(w, fault.status, errorBody(fault.status, fault.reason, fault.message))
				return
			}
		}
		insert := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/jobs")
		if !insert {
			rp.ServeHTTP(w, r)
			return
		}
		upload := strings.HasPrefix(r.URL.Path, "/upload/")
		n := f.inserts.Add(1)
		if upload && f.stall.Add(-1) >= 0 {
			io.Copy(io.Discard, r.Body) // take what the client sends, answer nothing until it gives up
			select {
			case <-r.Context().Done():
			case <-quit:
			}
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		id := ""
		if m := jobIDField.FindSubmatch(body); m != nil {
			id = string(m[1])
		}
		f.mu.Lock()
		reused := id != "" && f.created[id]
		if !upload {
			f.queries = append(f.queries, string(body))
		}
		var fault *jobFault
		if upload && !reused && len(f.refuseRows) > 0 && bytes.Contains(body, f.refuseRows) {
			fault = &jobFault{status: http.StatusBadRequest, reason: "invalid",
				message: "Error while reading data, error message: Invalid string value in column event_id at row 1; reason: invalid, location: events.parquet"}
			f.failed[id] = fault
		}
		if !upload && !reused {
			for _, q := range f.queryFaults {
				if q.times > 0 && bytes.Contains(body, []byte(q.match)) {
					q.times--
					fault = q
					f.failed[id] = q
					break
				}
			}
		}
		f.mu.Unlock()
		switch {
		case reused:
			writeJSON(w, http.StatusConflict, errorBody(http.StatusConflict, "duplicate", "Already Exists: Job "+project+":"+id))
			return
		case fault != nil:
			writeJSON(w, http.StatusOK, fmt.Sprintf(`{"kind":"bigquery#job","jobReference":{"projectId":%q,"jobId":%q},`+
				`"configuration":{"jobType":"QUERY","query":{"query":"injected"}},"status":{"state":"RUNNING"}}`, project, id))
			return
		case f.failures.Add(-1) >= 0 || n == f.failAt.Load():
			writeJSON(w, f.status, fmt.Sprintf(`{"error":{"code":%d,"message":"injected","errors":[{"reason":"backendError","message":"injected"}]}}`, f.status))
			return
		case n == f.cutAt.Load():
			r.Body = io.NopCloser(bytes.NewReader(body[:len(body)/2]))
			r.ContentLength = int64(len(body) / 2)
			rp.ServeHTTP(httptest.NewRecorder(), r)
			writeJSON(w, http.StatusServiceUnavailable, `{"error":{"code":503,"message":"injected","errors":[{"reason":"backendError","message":"connection lost"}]}}`)
			return
		case f.conflict.Add(-1) >= 0:
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r)
			f.record(id, rec.Code)
			writeJSON(w, http.StatusConflict, `{"error":{"code":409,"message":"Already Exists: Job","errors":[{"reason":"duplicate","message":"Already Exists"}]}}`)
			return
		}
		sr := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		rp.ServeHTTP(sr, r)
		f.record(id, sr.code)
	}))
	t.Cleanup(func() {
		close(quit)
		srv.Close()
	})
	return []option.ClientOption{option.WithEndpoint(srv.URL), option.WithoutAuthentication()}
}

// mergeBytesOf returns the bytes to show for a job when it is the merge job of a table in mergeBytes (job IDs
// read sendpilot_<batch>_<table>_merge…).
func (f *faultProxy) mergeBytesOf(jobID string) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for table, n := range f.mergeBytes {
		if strings.Contains(jobID, "_"+table+"_merge") {
			return n, true
		}
	}
	return 0, false
}

// withBytesProcessed sets statistics.query.totalBytesProcessed (an int64 as a JSON string, as the REST API
// encodes it) in a jobs.get answer; an error answer is returned unchanged.
func withBytesProcessed(t *testing.T, body []byte, n int64) string {
	var job map[string]any
	if err := json.Unmarshal(body, &job); err != nil || job["error"] != nil {
		return string(body)
	}
	stats, _ := job["statistics"].(map[string]any)
	if stats == nil {
		stats = map[string]any{}
		job["statistics"] = stats
	}
	q, _ := stats["query"].(map[string]any)
	if q == nil {
		q = map[string]any{}
		stats["query"] = q
	}
	q["totalBytesProcessed"] = strconv.FormatInt(n, 10)
	out, err := json.Marshal(job)
	if err != nil {
		t.Errorf("encode jobs.get answer: %v", err)
	}
	return string(out)
}

// record notes a job ID the emulator accepted, so that inserting it again answers 409 as BigQuery does.
func (f *faultProxy) record(id string, code int) {
	if id == "" || code/100 != 2 {
		return
	}
	f.mu.Lock()
	f.created[id] = true
	f.mu.Unlock()
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
