// Package bigquery loads batches into Google BigQuery with load jobs (free, unlike streaming inserts) and
// merges them into the final tables on the natural keys. It is the only package that imports the BigQuery
// client.
//
// For each table of a batch, three jobs run, each with a job ID derived from (batch, table, step, attempt):
//
//	stage  a load job uploads the Parquet file into _stage_<table>_<batch> (WRITE_TRUNCATE, explicit schema,
//	       JSON columns as STRING: BigQuery cannot load JSON columns from Parquet)
//	dedup  a query keeps one row per natural key into _dedup_<table>_<batch> (MERGE refuses two source rows
//	       for one target row)
//	merge  MERGE inserts the rows whose key is not in the final table yet, turning JSON text into JSON, and
//	       touches only the partitions of the days the batch's rows fall on (pruneFor)
//
// Before creating a job the warehouse looks for the job with that ID: after a crash it finds the job that
// already ran instead of running it again. A job ID can never be reused, so a failed job is followed by the
// next attempt's ID. Every step is idempotent in itself as well (truncating loads, a MERGE that inserts only
// missing keys), so a repeated step changes nothing. A stage job found done must also have staged all of the
// batch's rows for its table (an upload cut off after its job was recorded may not have); if not, the stage is
// loaded again under the next attempt's ID, followed by dedup and merge jobs of its own; so is a dedup that had
// to run again.
//
// Nothing waits without a bound: every request and every wait for a job runs under Config.StepTimeout, jobs
// are polled with jobs.get, and every retry loop has a count and a backoff. Every job and job look-up names
// the dataset's location, read in Ensure. Errors are sorted into the loader's three classes (see classOf).
package bigquery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"sendpilot-loader/load"
	sqlfiles "sendpilot-loader/sql"
	"sendpilot-loader/transform"
)

// Config says where the tables live.
type Config struct {
	Project  string
	Dataset  string
	Location string // e.g. "US" or "europe-west1"; empty lets BigQuery choose
	// SingleRequestUpload sends each Parquet file in one request instead of a resumable upload.
	SingleRequestUpload bool
	// UploadAttempts bounds how often an upload is tried within one load (default 3). The client library
	// retries jobs whose data is already in GCS, but never media uploads, so the warehouse does it.
	UploadAttempts int
	// Backoff is the first wait between upload attempts (default 1 s), doubled each time.
	Backoff time.Duration
	// Bucket, when set, stages each Parquet file as gs://<Bucket>/<Prefix>/<batch>/<table>.parquet and loads
	// from there: the client library retries load jobs whose data is in GCS. The objects are deleted after the
	// merge. The storage client honours STORAGE_EMULATOR_HOST.
	Bucket string
	// Prefix is the object name prefix under Bucket (default "sendpilot-loader").
	Prefix string
	// EmulatorHost (host:port), when set, sends every call to a BigQuery emulator over plain HTTP without
	// credentials, and uploads each file in one request (the emulator breaks resumable uploads over 16 MiB).
	EmulatorHost string
	// Tables and Version, when Tables is set, are the columns the warehouse writes and their schema version
	// instead of sql/bigquery/tables.sql and its newest recorded version; upgrade tests stand in for other
	// releases with them.
	Tables  map[string][]sqlfiles.Column
	Version int
	// StepTimeout bounds every request to BigQuery or Cloud Storage (an upload included) and every wait for a
	// job (default 10 min). A job still running when it ends is not given up: the next load finds it by its ID
	// and waits for it again.
	StepTimeout time.Duration
	// PollInterval is how often a running job's status is read (default 1 s).
	PollInterval time.Duration
}

// Defaults of the Config fields left zero.
const (
	DefaultStepTimeout  = 10 * time.Minute
	DefaultPollInterval = time.Second
)

// conflictLookups bounds how often a job that BigQuery says exists (409) is looked for before giving up.
const conflictLookups = 4

// clustering of each table; events are mostly filtered by type and campaign, leads by job, children by lead.
// It serves the analysts' queries, not the merge, and no clustering could serve the merge as it is written:
//
//   - The merge's ON clause compares the target's natural-key columns with the staged rows' columns
//     (T.event_id = S.event_id …). BigQuery prunes blocks only on filters that compare a clustered column with
//     constants: "If a filter expression compares a clustered column to another column … block pruning cannot
//     be applied" (https://cloud.google.com/bigquery/docs/querying-clustered-tables#best_practices). Leading
//     the clustering with event_id would therefore prune nothing, and would cost the filters above.
//   - What bounds the merge is partition pruning: the ON clause holds constant bounds on occurred_at around
//     the days the batch's rows fall on (pruneFor), which BigQuery uses to skip partitions in a MERGE
//     (https://cloud.google.com/bigquery/docs/using-dml-with-partitioned-tables#pruning_partitions_when_using_a_merge_statement).
//   - A MERGE that only inserts is billed for the columns it references in the partitions it scans, not for
//     the whole rows (https://cloud.google.com/bigquery/docs/reference/standard-sql/dml-syntax#on-demand_query_size_calculation):
//     the target's key columns and occurred_at in the batch's days, plus the staged batch. Its job statistics
//     (LoadResult.BytesRead) show that figure per batch, so a merge that reads more than its days shows.
//
// Changing the clustering of an existing table only affects data written afterwards, so a change here would
// also need migrate.go to update the existing tables.
var clustering = map[string][]string{
	transform.TableEvents:     {"event_type", "campaign_id"},
	transform.TableLeads:      {"event_type", "job_id"},
	transform.TableExperience: {"lead_id"},
	transform.TableEducation:  {"lead_id"},
}

// Warehouse is a BigQuery dataset.
type Warehouse struct {
	c       *bigquery.Client
	cfg     Config
	final   map[string]bigquery.Schema // JSON columns typed JSON
	staging map[string]bigquery.Schema // JSON columns typed STRING
	columns map[string][]sqlfiles.Column
	version int             // the schema version of columns
	checked bool            // Ensure has just migrated: the next Load need not
	gcs     *storage.Client // nil unless Config.Bucket is set
	// location is where the dataset lives, as BigQuery says (or Config.Location if it says nothing); every job
	// and job look-up names it. located is true once it is known and the staging bucket was checked.
	location string
	located  bool
}

var _ load.Warehouse = (*Warehouse)(nil)

// New connects to BigQuery. Credentials come from Application Default Credentials unless opts say otherwise.
func New(ctx context.Context, cfg Config, opts ...option.ClientOption) (*Warehouse, error) {
	if cfg.Project == "" || cfg.Dataset == "" {
		return nil, errors.New("connect bigquery: project and dataset are required")
	}
	if cfg.UploadAttempts <= 0 {
		cfg.UploadAttempts = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "sendpilot-loader"
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = DefaultStepTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.EmulatorHost != "" {
		opts = append([]option.ClientOption{option.WithEndpoint("http://" + cfg.EmulatorHost), option.WithoutAuthentication()}, opts...)
		cfg.SingleRequestUpload = true
	}
	c, err := bigquery.NewClient(ctx, cfg.Project, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect bigquery: %w", err)
	}
	c.Location = cfg.Location
	w := &Warehouse{c: c, cfg: cfg, final: map[string]bigquery.Schema{}, staging: map[string]bigquery.Schema{}}
	if cfg.Bucket != "" {
		if w.gcs, err = storage.NewClient(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("connect cloud storage: %w", err)
		}
	}
	w.columns, w.version, err = schemaFor(cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	for _, t := range transform.Tables {
		w.final[t], err = schemaOf(w.columns[t], false)
		if err == nil {
			w.staging[t], err = schemaOf(w.columns[t], true)
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("table %s: %w", t, err)
		}
	}
	return w, nil
}

// schemaOf turns DDL columns into a BigQuery schema; staging keeps JSON as STRING.
func schemaOf(cols []sqlfiles.Column, staging bool) (bigquery.Schema, error) {
	var s bigquery.Schema
	for _, c := range cols {
		f := &bigquery.FieldSchema{Name: c.Name, Required: c.NotNull}
		switch c.Type {
		case "STRING":
			f.Type = bigquery.StringFieldType
		case "JSON":
			f.Type = bigquery.JSONFieldType
			if staging {
				f.Type = bigquery.StringFieldType
			}
		case "INT64":
			f.Type = bigquery.IntegerFieldType
		case "FLOAT64":
			f.Type = bigquery.FloatFieldType
		case "BOOL":
			f.Type = bigquery.BooleanFieldType
		case "TIMESTAMP":
			f.Type = bigquery.TimestampFieldType
		case "ARRAY<STRING>":
			f.Type, f.Repeated = bigquery.StringFieldType, true
		default:
			return nil, fmt.Errorf("map column %s: unsupported type %s", c.Name, c.Type)
		}
		s = append(s, f)
	}
	return s, nil
}

// Name implements load.Warehouse.
func (w *Warehouse) Name() string { return "bigquery:" + w.cfg.Project + "." + w.cfg.Dataset }

// Close implements load.Warehouse.
func (w *Warehouse) Close() error {
	if w.gcs != nil {
		w.gcs.Close()
	}
	return w.c.Close()
}

// Ensure implements load.Warehouse: it creates the dataset (in Config.Location) and the tables
// (day-partitioned on occurred_at and clustered) when they are missing, migrates existing ones to this
// release's schema (migrate.go), and creates the views of sql/bigquery/views.sql. The columns come from sql/bigquery/tables.sql. It learns where the dataset lives and
// checks the staging bucket against it (see locate).
func (w *Warehouse) Ensure(ctx context.Context) error {
	if err := w.locate(ctx, true); err != nil {
		return err
	}
	ds := w.c.Dataset(w.cfg.Dataset)
	for _, t := range transform.Tables {
		table := ds.Table(t)
		if _, err := w.tableMetadata(ctx, table); err == nil {
			continue
		} else if !isStatus(err, http.StatusNotFound) {
			return classified(fmt.Errorf("look up table %s: %w", t, err), anyCall)
		}
		md := &bigquery.TableMetadata{
			Schema:           w.final[t],
			TimePartitioning: &bigquery.TimePartitioning{Type: bigquery.DayPartitioningType, Field: "occurred_at"},
			Clustering:       &bigquery.Clustering{Fields: clustering[t]},
			Description:      "SendPilot " + t + "; written by sendpilot-loader",
		}
		if err := do(ctx, w.cfg.StepTimeout, func(ctx context.Context) error { return table.Create(ctx, md) }); err != nil && !isStatus(err, http.StatusConflict) {
			return classified(fmt.Errorf("create table %s: %w", t, err), anyCall)
		}
	}
	changed, err := w.migrate(ctx)
	if err != nil {
		return err
	}
	w.checked = true
	return w.ensureViews(ctx, changed)
}

// locate learns where the dataset lives, creating it in Config.Location first when create is set and it is
// missing, and checks the configuration against it once per Warehouse:
//
//   - every job and job look-up then names the dataset's location: BigQuery answers a look-up without one with
//     404 for a job outside the US and EU multi-regions (https://cloud.google.com/bigquery/docs/locations#specify_locations),
//     which without a location would send the warehouse creating a job that already exists;
//   - a dataset elsewhere than Config.Location, or a staging bucket that BigQuery cannot load from into it, is a
//     systemic error: no batch could load, and nothing should be moved aside for it.
func (w *Warehouse) locate(ctx context.Context, create bool) error {
	if w.located {
		return nil
	}
	ds := w.c.Dataset(w.cfg.Dataset)
	md, err := within(ctx, w.cfg.StepTimeout, ds.Metadata)
	if isStatus(err, http.StatusNotFound) && create {
		err = do(ctx, w.cfg.StepTimeout, func(ctx context.Context) error {
			return ds.Create(ctx, &bigquery.DatasetMetadata{Location: w.cfg.Location})
		})
		if err != nil && !isStatus(err, http.StatusConflict) {
			return classified(fmt.Errorf("create dataset %s: %w", w.cfg.Dataset, err), anyCall)
		}
		md, err = within(ctx, w.cfg.StepTimeout, ds.Metadata)
	}
	if err != nil {
		return classified(fmt.Errorf("look up dataset %s: %w", w.cfg.Dataset, err), anyCall)
	}
	loc := md.Location
	if w.cfg.Location != "" && loc != "" && !strings.EqualFold(loc, w.cfg.Location) {
		return fmt.Errorf("%w: dataset %s is in %s, not in bigquery.location %s", load.ErrSystemic, w.cfg.Dataset, loc, w.cfg.Location)
	}
	if loc == "" {
		loc = w.cfg.Location
	}
	if w.gcs != nil {
		attrs, err := within(ctx, w.cfg.StepTimeout, w.gcs.Bucket(w.cfg.Bucket).Attrs)
		if errors.Is(err, storage.ErrBucketNotExist) {
			return fmt.Errorf("%w: staging bucket gs://%s: %w", load.ErrSystemic, w.cfg.Bucket, err)
		}
		if err != nil {
			return classified(fmt.Errorf("look up staging bucket gs://%s: %w", w.cfg.Bucket, err), anyCall)
		}
		if !bucketFits(loc, attrs.Location) {
			return fmt.Errorf("%w: staging bucket gs://%s is in %s, from where BigQuery cannot load into dataset %s in %s",
				load.ErrSystemic, w.cfg.Bucket, attrs.Location, w.cfg.Dataset, loc)
		}
	}
	w.location, w.located = loc, true
	w.c.Location = loc
	return nil
}

// multiRegions maps BigQuery's multi-regions to the prefix of the regions inside them.
var multiRegions = map[string]string{"US": "US-", "EU": "EUROPE-"}

// bucketFits reports whether BigQuery can load into a dataset in location dataset from a Cloud Storage bucket
// in location bucket. BigQuery's rule (https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-parquet#limitations):
// "If your dataset's location is set to a value other than the US multi-region, then the Cloud Storage bucket
// must be in the same region or contained in the same multi-region as the dataset." Only a certain mismatch
// counts: for a location this cannot place (a dual-region such as EUR4, an unknown name) the load job itself
// answers "Cannot read and write in different locations", which classOf also takes for systemic.
func bucketFits(dataset, bucket string) bool {
	d, b := strings.ToUpper(dataset), strings.ToUpper(bucket)
	if d == "" || b == "" || d == "US" || d == b {
		return true
	}
	if prefix, ok := multiRegions[d]; ok {
		if strings.HasPrefix(b, prefix) {
			return true // a region inside the dataset's multi-region
		}
		_, multi := multiRegions[b]
		return !multi && !strings.Contains(b, "-") // another multi-region or region: no; a dual-region: maybe
	}
	_, multi := multiRegions[b]
	return !multi && !strings.Contains(b, "-") // a region dataset needs that region; a dual-region may hold it
}

// within runs f under a deadline of d from now: every request to BigQuery or Cloud Storage goes through it
// (or do), so that no single call can hang a load.
func within[T any](ctx context.Context, d time.Duration, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return f(ctx)
}

// tableMetadata reads a table's metadata under the step deadline.
func (w *Warehouse) tableMetadata(ctx context.Context, t *bigquery.Table) (*bigquery.TableMetadata, error) {
	return within(ctx, w.cfg.StepTimeout, func(ctx context.Context) (*bigquery.TableMetadata, error) { return t.Metadata(ctx) })
}

// do is within for calls that return only an error.
func do(ctx context.Context, d time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return f(ctx)
}

var unsafeID = regexp.MustCompile(`[^A-Za-z0-9_]`)

// names of a batch's helper tables and jobs.
func stageTable(table, batch string) string {
	return "_stage_" + table + "_" + unsafeID.ReplaceAllString(batch, "_")
}
func dedupTable(table, batch string) string {
	return "_dedup_" + table + "_" + unsafeID.ReplaceAllString(batch, "_")
}
func jobID(batch, table, step string, attempt int) string {
	return fmt.Sprintf("sendpilot_%s_%s_%s_a%d", unsafeID.ReplaceAllString(batch, "_"), table, step, attempt)
}

// Load implements load.Warehouse.
func (w *Warehouse) Load(ctx context.Context, b load.Batch) (load.LoadResult, error) {
	res := load.LoadResult{Inserted: map[string]int64{}, BytesRead: map[string]int64{}}
	if err := w.locate(ctx, false); err != nil {
		return res, err
	}
	if err := w.checkSchema(ctx); err != nil {
		return res, err
	}
	if b.Replace { // the replace script's statistics do not say what it deleted per table
		res.Replaced = map[string]int64{}
		for _, t := range transform.Tables {
			res.Replaced[t] = -1
		}
	}
	ds := w.c.Dataset(w.cfg.Dataset)
	for _, t := range transform.Tables {
		if b.Rows[t] == 0 {
			continue
		}
		stage, dedup := stageTable(t, b.ID), dedupTable(t, b.ID)
		_, staged, err := w.job(ctx, b.ID, t, "stage", loadJob, func(ctx context.Context, id string) (*bigquery.Job, error) {
			if w.gcs != nil {
				return w.loadFromGCS(ctx, id, ds.Table(stage), t, b)
			}
			return w.upload(ctx, id, ds.Table(stage), t, b.Files[t])
		}, w.checkStaged(ds.Table(stage), b.Rows[t]))
		if err != nil {
			return res, err
		}
		// A step that had to run again gets fresh jobs after it: ones that ran after an incomplete stage must
		// not be taken for done, and none may have read a table its step was still to write.
		after := ""
		if staged > 1 {
			after = fmt.Sprintf("_s%d", staged)
		}
		_, deduped, err := w.job(ctx, b.ID, t, "dedup"+after, batchQuery, func(ctx context.Context, id string) (*bigquery.Job, error) {
			q := w.c.Query(w.dedupSQL(t, stage))
			q.JobID, q.Location = id, w.location
			q.Dst, q.WriteDisposition, q.CreateDisposition = ds.Table(dedup), bigquery.WriteTruncate, bigquery.CreateIfNeeded
			return within(ctx, w.cfg.StepTimeout, q.Run)
		}, nil)
		if err != nil {
			return res, err
		}
		if deduped > 1 {
			after += fmt.Sprintf("_d%d", deduped)
		}
		j, _, err := w.job(ctx, b.ID, t, "merge"+after, batchQuery, func(ctx context.Context, id string) (*bigquery.Job, error) {
			prune := pruneFor(b, t)
			q := w.c.Query(w.mergeSQL(t, dedup, prune))
			if b.Replace && t == transform.TableEvents {
				q = w.c.Query(w.replaceSQL(dedup, prune))
			}
			q.JobID, q.Location = id, w.location
			return within(ctx, w.cfg.StepTimeout, q.Run)
		}, nil)
		if err != nil {
			return res, err
		}
		res.Inserted[t], res.BytesRead[t] = inserted(j), bytesRead(j)
	}
	for _, t := range transform.Tables { // helper tables and objects are only a cost now; a failure here is harmless
		do(ctx, w.cfg.StepTimeout, ds.Table(stageTable(t, b.ID)).Delete)
		do(ctx, w.cfg.StepTimeout, ds.Table(dedupTable(t, b.ID)).Delete)
		if w.gcs != nil && b.Rows[t] > 0 {
			do(ctx, w.cfg.StepTimeout, w.gcs.Bucket(w.cfg.Bucket).Object(w.objectName(b.ID, t)).Delete)
		}
	}
	return res, nil
}

// inserted is the number of rows a merge job inserted, or -1 when its statistics do not say.
func inserted(j *bigquery.Job) int64 {
	st := j.LastStatus()
	if st == nil || st.Statistics == nil {
		return -1
	}
	qs, ok := st.Statistics.Details.(*bigquery.QueryStatistics)
	switch {
	case !ok:
		return -1
	case qs.DMLStats != nil:
		return qs.DMLStats.InsertedRowCount
	case qs.NumDMLAffectedRows > 0: // the MERGE only inserts, so the rows it touched are the rows it inserted
		return qs.NumDMLAffectedRows
	}
	return -1
}

// bytesRead is what a merge job read, as its statistics say (statistics.query.totalBytesProcessed,
// https://cloud.google.com/bigquery/docs/reference/rest/v2/Job#JobStatistics2), or -1 when the job has no query
// statistics. For the replace script the job is the script's parent, which reports the bytes of all its
// statements together (https://cloud.google.com/bigquery/docs/multi-statement-queries), so the events table's
// figure of a Replace batch includes its deletes from all four tables; a DELETE is billed for the whole
// partitions it changes, not only the columns it reads. A job found done from an earlier run carries the same
// statistics, so a resumed load reports the same figure.
func bytesRead(j *bigquery.Job) int64 {
	st := j.LastStatus()
	if st == nil || st.Statistics == nil {
		return -1
	}
	if qs, ok := st.Statistics.Details.(*bigquery.QueryStatistics); ok {
		return qs.TotalBytesProcessed
	}
	return -1
}

func (w *Warehouse) objectName(batch, table string) string {
	return w.cfg.Prefix + "/" + batch + "/" + table + ".parquet"
}

// loadFromGCS copies a Parquet file to the staging bucket (retrying the copy, which the storage client does not
// retry for an object without preconditions) and starts the load job from there.
func (w *Warehouse) loadFromGCS(ctx context.Context, id string, dst *bigquery.Table, table string, b load.Batch) (*bigquery.Job, error) {
	name := w.objectName(b.ID, table)
	err := load.Retry(ctx, w.cfg.UploadAttempts, w.cfg.Backoff, func(int) error {
		return w.copyToGCS(ctx, b.Files[table], name)
	}, nil)
	if err != nil {
		return nil, err
	}
	src := bigquery.NewGCSReference("gs://" + w.cfg.Bucket + "/" + name)
	src.SourceFormat = bigquery.Parquet
	src.ParquetOptions = &bigquery.ParquetOptions{EnableListInference: true}
	src.Schema = w.staging[table]
	l := dst.LoaderFrom(src)
	l.JobID, l.Location = id, w.location
	l.WriteDisposition, l.CreateDisposition = bigquery.WriteTruncate, bigquery.CreateIfNeeded
	return within(ctx, w.cfg.StepTimeout, l.Run)
}

// copyToGCS uploads one file to the staging bucket under the step deadline.
func (w *Warehouse) copyToGCS(ctx context.Context, path, name string) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.StepTimeout)
	defer cancel()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	ow := w.gcs.Bucket(w.cfg.Bucket).Object(name).NewWriter(ctx)
	ow.ContentType = "application/vnd.apache.parquet"
	if _, err := io.Copy(ow, f); err != nil {
		ow.Close()
		return fmt.Errorf("upload gs://%s/%s: %w", w.cfg.Bucket, name, err)
	}
	if err := ow.Close(); err != nil {
		return fmt.Errorf("upload gs://%s/%s: %w", w.cfg.Bucket, name, err)
	}
	return nil
}

// upload starts the load job that puts a Parquet file into a staging table, retrying the upload itself. Each
// try runs under the step deadline, so a stalled transfer ends with a transient error instead of a hang.
func (w *Warehouse) upload(ctx context.Context, id string, dst *bigquery.Table, table, path string) (*bigquery.Job, error) {
	var j *bigquery.Job
	err := load.Retry(ctx, w.cfg.UploadAttempts, w.cfg.Backoff, func(attempt int) error {
		if attempt > 1 {
			// The failed request may have created the job: look before uploading again.
			if existing, err := w.lookup(ctx, id); err == nil {
				j = existing
				return nil
			}
		}
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		defer f.Close()
		src := bigquery.NewReaderSource(f)
		src.SourceFormat = bigquery.Parquet
		src.ParquetOptions = &bigquery.ParquetOptions{EnableListInference: true}
		// An explicit schema pins TIMESTAMP, REPEATED and the STRING-typed JSON columns.
		src.Schema = w.staging[table]
		l := dst.LoaderFrom(src)
		l.JobID, l.Location = id, w.location
		l.WriteDisposition, l.CreateDisposition = bigquery.WriteTruncate, bigquery.CreateIfNeeded
		if w.cfg.SingleRequestUpload {
			l.MediaOptions = append(l.MediaOptions, googleapi.ChunkSize(0))
		}
		j, err = within(ctx, w.cfg.StepTimeout, l.Run)
		return err
	}, func(err error) bool { return !transient(err) || isStatus(err, http.StatusConflict) })
	return j, err
}

// lookup reads a job by its ID in the dataset's location, under the step deadline.
func (w *Warehouse) lookup(ctx context.Context, id string) (*bigquery.Job, error) {
	return within(ctx, w.cfg.StepTimeout, func(ctx context.Context) (*bigquery.Job, error) {
		return w.c.JobFromIDLocation(ctx, id, w.location)
	})
}

// maxAttempts bounds the attempt numbers of one step; reaching it means a step failed that often in a row.
const maxAttempts = 1 << 16

// job finds or runs the job of one step and returns it with its attempt number. Attempts are created one after
// another, each only once the one before failed (or, with verify, was found wanting), so only the last
// existing attempt can be done or running: job waits for that one, and when it failed creates the next. Each
// call creates at most one job, so retries go at the loader's pace and backoff. A job this call created that
// fails returns its error, classified (kind says whether the job reads the batch's rows); a failed job found
// from an earlier run is replaced whatever its error, since the cause may be gone.
func (w *Warehouse) job(ctx context.Context, batch, table, step string, kind jobKind, create func(ctx context.Context, id string) (*bigquery.Job, error), verify func(context.Context, *bigquery.Job) error) (*bigquery.Job, int, error) {
	last, j, err := w.lastAttempt(ctx, batch, table, step)
	if err != nil {
		return nil, 0, err
	}
	if last > 0 {
		ok, err := w.done(ctx, j, kind, verify)
		if err != nil && !errors.Is(err, errAttemptFailed) {
			return nil, 0, fmt.Errorf("%s %s (job %s): %w", step, table, j.ID(), err)
		}
		if ok {
			return j, last, nil // done before, possibly by a run that crashed afterwards
		}
	}
	attempt := last + 1
	if attempt > maxAttempts {
		return nil, 0, fmt.Errorf("%w: %s %s: %d attempts failed", load.ErrSystemic, step, table, last)
	}
	id := jobID(batch, table, step, attempt)
	j, err = create(ctx, id)
	if isStatus(err, http.StatusConflict) {
		// The job exists: made by a request that failed after creating it, or by another replica. Wait for it.
		j, err = w.lookupCreated(ctx, id)
	}
	if err != nil {
		return nil, 0, classified(fmt.Errorf("start %s %s (job %s): %w", step, table, id, err), anyCall)
	}
	if _, err := w.done(ctx, j, kind, verify); err != nil {
		return nil, 0, fmt.Errorf("%s %s (job %s): %w", step, table, id, err)
	}
	return j, attempt, nil
}

// errAttemptFailed marks a job that failed or did not do its whole work: the next attempt's job replaces it.
var errAttemptFailed = errors.New("the attempt failed; the next one replaces it")

// done waits for a job and reports whether it succeeded (and verify, when set, accepts it). A job that failed,
// or that verify finds wanting, gives an error wrapping errAttemptFailed and the job's error, classified; a job
// that could not be waited for (or checked) gives that error alone.
func (w *Warehouse) done(ctx context.Context, j *bigquery.Job, kind jobKind, verify func(context.Context, *bigquery.Job) error) (bool, error) {
	st, err := w.wait(ctx, j)
	if err != nil {
		return false, classified(err, anyCall)
	}
	if err := st.Err(); err != nil {
		return false, fmt.Errorf("%w: %w", errAttemptFailed, classified(err, kind))
	}
	if verify != nil {
		if err := verify(ctx, j); err != nil {
			if errors.Is(err, load.ErrSystemic) {
				return false, err
			}
			return false, fmt.Errorf("%w: %w", errAttemptFailed, err)
		}
	}
	return true, nil
}

// lastAttempt returns the highest attempt of a step whose job exists (0 when none does) and that job. Since
// attempts exist for 1..n without gaps, it doubles and then bisects: a step retried many times costs a few
// look-ups, not one per attempt.
func (w *Warehouse) lastAttempt(ctx context.Context, batch, table, step string) (int, *bigquery.Job, error) {
	var last *bigquery.Job
	exists := func(attempt int) (bool, error) {
		j, err := w.lookup(ctx, jobID(batch, table, step, attempt))
		switch {
		case isStatus(err, http.StatusNotFound):
			return false, nil
		case err != nil:
			return false, classified(fmt.Errorf("look up job %s: %w", jobID(batch, table, step, attempt), err), anyCall)
		}
		last = j
		return true, nil
	}
	lo, hi := 0, 1 // attempt lo exists (0: none), attempt hi is to be tried
	for ; hi <= maxAttempts; lo, hi = hi, hi*2 {
		ok, err := exists(hi)
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			break
		}
	}
	if hi > maxAttempts {
		return lo, last, nil
	}
	found := last
	for hi-lo > 1 { // lo exists, hi does not
		mid := (lo + hi) / 2
		ok, err := exists(mid)
		if err != nil {
			return 0, nil, err
		}
		if ok {
			lo, found = mid, last
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return 0, nil, nil
	}
	return lo, found, nil
}

// lookupCreated finds a job that BigQuery just said exists (409), trying a bounded number of times with backoff:
// its metadata may take a moment to be visible. A job that stays invisible is in another location than the
// dataset's, which no retry fixes.
func (w *Warehouse) lookupCreated(ctx context.Context, id string) (*bigquery.Job, error) {
	var j *bigquery.Job
	err := load.Retry(ctx, conflictLookups, w.cfg.Backoff, func(int) error {
		var err error
		j, err = w.lookup(ctx, id)
		return err
	}, func(err error) bool { return !isStatus(err, http.StatusNotFound) && !transient(err) })
	if isStatus(err, http.StatusNotFound) {
		return nil, fmt.Errorf("%w: job %s exists (409) but is not found in location %q; is bigquery.location right?: %w", load.ErrSystemic, id, w.location, err)
	}
	return j, err
}

// wait polls a job's status (jobs.get) every PollInterval until it is done, for at most StepTimeout, and returns
// it. It does not use Job.Wait: for a query job that polls jobs.getQueryResults, which answers a failed job with
// its error as an HTTP error, and the client library retries backendError, rateLimitExceeded and internalError
// there until the context ends (googleapis/google-cloud-go#1168), so a failed dedup or MERGE would block forever
// and its error would never be read. Here a failed job's error is read from its status, where the caller
// classifies it.
func (w *Warehouse) wait(ctx context.Context, j *bigquery.Job) (*bigquery.JobStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.StepTimeout)
	defer cancel()
	tick := time.NewTicker(w.cfg.PollInterval)
	defer tick.Stop()
	for {
		st, err := j.Status(ctx) // the client retries 5xx and rateLimitExceeded itself, within ctx
		switch {
		case err == nil && st.Done():
			return st, nil
		case err != nil && !transient(err) && !isStatus(err, http.StatusNotFound):
			return nil, fmt.Errorf("poll job %s: %w", j.ID(), err)
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("still %s", stateName(st.State))
			}
			return nil, fmt.Errorf("wait for job %s (the next load waits again): %w: %w", j.ID(), err, ctx.Err())
		case <-tick.C:
		}
	}
}

func stateName(s bigquery.State) string {
	switch s {
	case bigquery.Pending:
		return "pending"
	case bigquery.Running:
		return "running"
	}
	return "in an unknown state"
}

// checkStaged returns a check that a stage job put all want rows of a table into the staging table: a load job
// whose data never fully arrived (an upload cut off after the job was recorded) must not be merged as if it
// had. The job's statistics say how many rows it wrote; without them (the emulator keeps none), the staging
// table's row count does. A staging table that is gone was merged and dropped already.
func (w *Warehouse) checkStaged(stage *bigquery.Table, want int64) func(context.Context, *bigquery.Job) error {
	return func(ctx context.Context, j *bigquery.Job) error {
		got := int64(-1)
		if st := j.LastStatus(); st != nil && st.Statistics != nil {
			if ls, ok := st.Statistics.Details.(*bigquery.LoadStatistics); ok {
				got = ls.OutputRows
			}
		}
		if got < 0 {
			md, err := w.tableMetadata(ctx, stage)
			switch {
			case isStatus(err, http.StatusNotFound):
				return nil
			case err != nil:
				return classified(fmt.Errorf("look up %s: %w", stage.TableID, err), anyCall)
			}
			got = int64(md.NumRows)
		}
		if got != want {
			return fmt.Errorf("staged %d of the batch's %d rows", got, want)
		}
		return nil
	}
}

// dedupSQL keeps one row per natural key of a staging table.
func (w *Warehouse) dedupSQL(table, stage string) string {
	keys := strings.Join(transform.NaturalKeys[table], ", ")
	return fmt.Sprintf("SELECT * EXCEPT (_rn) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY %s ORDER BY %s) AS _rn FROM `%s.%s`) WHERE _rn = 1",
		keys, keys, w.cfg.Dataset, stage)
}

// mergeSQL inserts the deduplicated rows whose key is not in the table yet. The ON clause holds prune (see
// pruneFor), which restricts the target to the days the batch's rows fall on (and the NULL partition when
// some have no time), so the MERGE reads only those partitions.
//
// Two replicas whose batches hold the same event can run this MERGE for the same new key at once. Nothing in
// BigQuery's documentation makes that safe. Each DML statement reads the table at its own snapshot (snapshot
// isolation: https://cloud.google.com/blog/products/data-analytics/dml-without-limits-now-in-bigquery). Concurrent
// mutating statements conflict only when they mutate the same partition, and the DML page treats a MERGE that
// only inserts rows as one that does not conflict
// (https://cloud.google.com/bigquery/docs/data-manipulation-language#dml_statement_conflicts). So both replicas
// may commit a row. docs/operations.md (section 7) gives that window and the check, and events_latest shows one
// row per event_id. When BigQuery does report a conflict (invalidQuery "… due to concurrent update"), classOf
// makes it transient, and the MERGE's next attempt sees the other commit and does not insert the key twice.
func (w *Warehouse) mergeSQL(table, dedup, prune string) string {
	var on []string
	for _, k := range transform.NaturalKeys[table] {
		on = append(on, fmt.Sprintf("T.%s = S.%s", k, k))
	}
	on = append(on, prune)
	var names, values []string
	for _, c := range w.columns[table] {
		names = append(names, c.Name)
		if c.Type == "JSON" {
			values = append(values, fmt.Sprintf("PARSE_JSON(S.%s, wide_number_mode => 'round')", c.Name))
		} else {
			values = append(values, "S."+c.Name)
		}
	}
	return fmt.Sprintf("MERGE `%s.%s` T USING `%s.%s` S ON %s WHEN NOT MATCHED THEN INSERT (%s) VALUES (%s)",
		w.cfg.Dataset, table, w.cfg.Dataset, dedup, strings.Join(on, " AND "), strings.Join(names, ", "), strings.Join(values, ", "))
}

// pruneFor restricts the target table T of a statement merging the batch's file of table to the partitions
// that can hold a stored duplicate of its rows: an event's duplicates share its occurred_at, and a child row
// its event's. It names the days the file's rows fall on (pruneDaysSQL), so a batch holding one late event
// from long ago reads that day's partition, not every day since. When the file cannot be read, it falls back
// to the batch's whole occurred_at range (pruneSQL), which holds those days too.
func pruneFor(b load.Batch, table string) string {
	days, hasNull, err := occurredDays(b.Files[table])
	if err != nil {
		return pruneSQL(b)
	}
	return pruneDaysSQL(days, hasNull)
}

// pruneSQL restricts the target table T to the batch's occurred_at range, and the NULL partition when the
// batch has rows without a time, so a statement reads only those partitions.
func pruneSQL(b load.Batch) string {
	var prune []string
	if b.HasOccurred {
		prune = append(prune, fmt.Sprintf("T.occurred_at BETWEEN TIMESTAMP '%s' AND TIMESTAMP '%s'",
			b.MinOccurred.UTC().Format(load.TimestampLayout), b.MaxOccurred.UTC().Format(load.TimestampLayout)))
	}
	if b.SearchesNoOccurred() {
		prune = append(prune, "T.occurred_at IS NULL")
	}
	return "(" + strings.Join(prune, " OR ") + ")"
}
