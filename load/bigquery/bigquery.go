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
//	       touches only the partitions between the batch's first and last occurred_at
//
// Before creating a job the warehouse looks for the job with that ID: after a crash it finds the job that
// already ran instead of running it again. A job ID can never be reused, so a failed job is followed by the
// next attempt's ID. Every step is idempotent in itself as well (truncating loads, a MERGE that inserts only
// missing keys), so a repeated step changes nothing. A stage job found done must also have staged all of the
// batch's rows for its table (an upload cut off after its job was recorded may not have); if not, the stage is
// loaded again under the next attempt's ID, followed by dedup and merge jobs of its own.
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
}

// naturalKeys are the dedup keys of each table.
var naturalKeys = map[string][]string{
	transform.TableEvents:     {"event_id"},
	transform.TableLeads:      {"event_id", "lead_index"},
	transform.TableExperience: {"event_id", "lead_index", "position"},
	transform.TableEducation:  {"event_id", "lead_index", "position"},
}

// clustering of each table; events are mostly filtered by type and campaign, leads by job, children by lead.
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

// Ensure implements load.Warehouse: it creates the dataset and the tables (day-partitioned on occurred_at and
// clustered) when they are missing, migrates existing ones to this release's schema (migrate.go), and creates
// the views of sql/bigquery/views.sql. The columns come from sql/bigquery/tables.sql.
func (w *Warehouse) Ensure(ctx context.Context) error {
	ds := w.c.Dataset(w.cfg.Dataset)
	if _, err := ds.Metadata(ctx); isStatus(err, http.StatusNotFound) {
		if err := ds.Create(ctx, &bigquery.DatasetMetadata{Location: w.cfg.Location}); err != nil && !isStatus(err, http.StatusConflict) {
			return fmt.Errorf("create dataset %s: %w", w.cfg.Dataset, err)
		}
	} else if err != nil {
		return fmt.Errorf("look up dataset %s: %w", w.cfg.Dataset, err)
	}
	for _, t := range transform.Tables {
		table := ds.Table(t)
		if _, err := table.Metadata(ctx); err == nil {
			continue
		} else if !isStatus(err, http.StatusNotFound) {
			return fmt.Errorf("look up table %s: %w", t, err)
		}
		md := &bigquery.TableMetadata{
			Schema:           w.final[t],
			TimePartitioning: &bigquery.TimePartitioning{Type: bigquery.DayPartitioningType, Field: "occurred_at"},
			Clustering:       &bigquery.Clustering{Fields: clustering[t]},
			Description:      "SendPilot " + t + "; written by sendpilot-loader",
		}
		if err := table.Create(ctx, md); err != nil && !isStatus(err, http.StatusConflict) {
			return fmt.Errorf("create table %s: %w", t, err)
		}
	}
	changed, err := w.migrate(ctx)
	if err != nil {
		return err
	}
	w.checked = true
	return w.ensureViews(ctx, changed)
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
	res := load.LoadResult{Inserted: map[string]int64{}}
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
		_, staged, err := w.job(ctx, b.ID, t, "stage", func(id string) (*bigquery.Job, error) {
			if w.gcs != nil {
				return w.loadFromGCS(ctx, id, ds.Table(stage), t, b)
			}
			return w.upload(ctx, id, ds.Table(stage), t, b.Files[t])
		}, w.checkStaged(ctx, ds.Table(stage), b.Rows[t]))
		if err != nil {
			return res, err
		}
		// A stage that had to be loaded again gets fresh dedup and merge jobs: ones that ran after an
		// incomplete stage must not be taken for done.
		after := ""
		if staged > 1 {
			after = fmt.Sprintf("_s%d", staged)
		}
		if _, _, err := w.job(ctx, b.ID, t, "dedup"+after, func(id string) (*bigquery.Job, error) {
			q := w.c.Query(w.dedupSQL(t, stage))
			q.JobID, q.Location = id, w.cfg.Location
			q.Dst, q.WriteDisposition, q.CreateDisposition = ds.Table(dedup), bigquery.WriteTruncate, bigquery.CreateIfNeeded
			return q.Run(ctx)
		}, nil); err != nil {
			return res, err
		}
		j, _, err := w.job(ctx, b.ID, t, "merge"+after, func(id string) (*bigquery.Job, error) {
			q := w.c.Query(w.mergeSQL(t, dedup, b))
			if b.Replace && t == transform.TableEvents {
				q = w.c.Query(w.replaceSQL(dedup, b))
			}
			q.JobID, q.Location = id, w.cfg.Location
			return q.Run(ctx)
		}, nil)
		if err != nil {
			return res, err
		}
		res.Inserted[t] = -1
		if st := j.LastStatus(); st != nil && st.Statistics != nil {
			if qs, ok := st.Statistics.Details.(*bigquery.QueryStatistics); ok && qs.NumDMLAffectedRows > 0 {
				res.Inserted[t] = qs.NumDMLAffectedRows
			}
		}
	}
	for _, t := range transform.Tables { // helper tables and objects are only a cost now; a failure here is harmless
		ds.Table(stageTable(t, b.ID)).Delete(ctx)
		ds.Table(dedupTable(t, b.ID)).Delete(ctx)
		if w.gcs != nil && b.Rows[t] > 0 {
			w.gcs.Bucket(w.cfg.Bucket).Object(w.objectName(b.ID, t)).Delete(ctx)
		}
	}
	return res, nil
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
	l.JobID, l.Location = id, w.cfg.Location
	l.WriteDisposition, l.CreateDisposition = bigquery.WriteTruncate, bigquery.CreateIfNeeded
	return l.Run(ctx)
}

func (w *Warehouse) copyToGCS(ctx context.Context, path, name string) error {
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

// upload starts the load job that puts a Parquet file into a staging table, retrying the upload itself.
func (w *Warehouse) upload(ctx context.Context, id string, dst *bigquery.Table, table, path string) (*bigquery.Job, error) {
	var j *bigquery.Job
	err := load.Retry(ctx, w.cfg.UploadAttempts, w.cfg.Backoff, func(attempt int) error {
		if attempt > 1 {
			// The failed request may have created the job: look before uploading again.
			if existing, err := w.c.JobFromIDLocation(ctx, id, w.cfg.Location); err == nil {
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
		l.JobID, l.Location = id, w.cfg.Location
		l.WriteDisposition, l.CreateDisposition = bigquery.WriteTruncate, bigquery.CreateIfNeeded
		if w.cfg.SingleRequestUpload {
			l.MediaOptions = append(l.MediaOptions, googleapi.ChunkSize(0))
		}
		j, err = l.Run(ctx)
		return err
	}, func(err error) bool { return !transient(err) })
	return j, err
}

// job finds or runs the job of one step and returns it with its attempt number: it looks for attempt 1, 2, …
// and waits on the first one that did not fail (and that verify, when set, accepts); when all that exist
// failed, it creates the next attempt.
func (w *Warehouse) job(ctx context.Context, batch, table, step string, create func(id string) (*bigquery.Job, error), verify func(*bigquery.Job) error) (*bigquery.Job, int, error) {
	for attempt := 1; attempt <= 100; attempt++ {
		id := jobID(batch, table, step, attempt)
		j, err := w.c.JobFromIDLocation(ctx, id, w.cfg.Location)
		switch {
		case err == nil:
			st, werr := j.Wait(ctx)
			if werr == nil && st.Err() == nil && (verify == nil || verify(j) == nil) {
				return j, attempt, nil // done before, possibly by a run that crashed afterwards
			}
			if werr == nil && st.Err() != nil && permanent(st.Err()) {
				return nil, 0, fmt.Errorf("%w: %s %s: %w", load.ErrRejected, step, table, st.Err())
			}
			if werr != nil && !transient(werr) {
				return nil, 0, fmt.Errorf("wait for %s: %w", id, werr)
			}
			continue // that attempt failed transiently, or did not do its whole work: the next ID is free
		case !isStatus(err, http.StatusNotFound):
			return nil, 0, fmt.Errorf("look up job %s: %w", id, err)
		}
		j, err = create(id)
		if isStatus(err, http.StatusConflict) {
			attempt-- // created meanwhile (or by a request that failed after creating it): look again
			continue
		}
		if err != nil {
			return nil, 0, w.classify(fmt.Errorf("start %s %s: %w", step, table, err))
		}
		st, err := j.Wait(ctx)
		if err != nil {
			return nil, 0, w.classify(fmt.Errorf("wait for %s: %w", id, err))
		}
		if err := st.Err(); err != nil {
			return nil, 0, w.classify(fmt.Errorf("%s %s (job %s): %w", step, table, id, err))
		}
		if verify != nil {
			if err := verify(j); err != nil { // the next run finds this attempt wanting and makes another
				return nil, 0, fmt.Errorf("%s %s (job %s): %w", step, table, id, err)
			}
		}
		return j, attempt, nil
	}
	return nil, 0, fmt.Errorf("%s %s: too many failed attempts", step, table)
}

// checkStaged returns a check that a stage job put all want rows of a table into the staging table: a load job
// whose data never fully arrived (an upload cut off after the job was recorded) must not be merged as if it
// had. The job's statistics say how many rows it wrote; without them (the emulator keeps none), the staging
// table's row count does. A staging table that is gone was merged and dropped already.
func (w *Warehouse) checkStaged(ctx context.Context, stage *bigquery.Table, want int64) func(*bigquery.Job) error {
	return func(j *bigquery.Job) error {
		got := int64(-1)
		if st := j.LastStatus(); st != nil && st.Statistics != nil {
			if ls, ok := st.Statistics.Details.(*bigquery.LoadStatistics); ok {
				got = ls.OutputRows
			}
		}
		if got < 0 {
			md, err := stage.Metadata(ctx)
			switch {
			case isStatus(err, http.StatusNotFound):
				return nil
			case err != nil:
				return fmt.Errorf("look up %s: %w", stage.TableID, err)
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
	keys := strings.Join(naturalKeys[table], ", ")
	return fmt.Sprintf("SELECT * EXCEPT (_rn) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY %s ORDER BY %s) AS _rn FROM `%s.%s`) WHERE _rn = 1",
		keys, keys, w.cfg.Dataset, stage)
}

// mergeSQL inserts the deduplicated rows whose key is not in the table yet. The ON clause restricts the target
// to the batch's occurred_at range (and the NULL partition when the batch has rows without a time), so the
// MERGE reads only those partitions.
func (w *Warehouse) mergeSQL(table, dedup string, b load.Batch) string {
	var on []string
	for _, k := range naturalKeys[table] {
		on = append(on, fmt.Sprintf("T.%s = S.%s", k, k))
	}
	on = append(on, pruneSQL(b))
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

// pruneSQL restricts the target table T to the batch's occurred_at range, and the NULL partition when the
// batch has rows without a time, so a statement reads only those partitions.
func pruneSQL(b load.Batch) string {
	var prune []string
	if !b.MinOccurred.IsZero() {
		prune = append(prune, fmt.Sprintf("T.occurred_at BETWEEN TIMESTAMP '%s' AND TIMESTAMP '%s'",
			b.MinOccurred.UTC().Format("2006-01-02 15:04:05.999999"), b.MaxOccurred.UTC().Format("2006-01-02 15:04:05.999999")))
	}
	if b.HasNullOccurred || b.MinOccurred.IsZero() {
		prune = append(prune, "T.occurred_at IS NULL")
	}
	return "(" + strings.Join(prune, " OR ") + ")"
}

// classify marks errors that retrying the batch cannot fix as rejected.
func (w *Warehouse) classify(err error) error {
	if permanent(err) {
		return fmt.Errorf("%w: %w", load.ErrRejected, err)
	}
	return err
}

// Reasons BigQuery gives for errors worth retrying, and for errors about the batch or statement itself.
var (
	retryReasons = map[string]bool{"backendError": true, "rateLimitExceeded": true, "quotaExceeded": true, "internalError": true}
	badReasons   = map[string]bool{"invalid": true, "invalidQuery": true}
)

type errKind int

const (
	otherError     errKind = iota
	transientError         // 5xx, 429, rate and quota limits, network failures: retry
	permanentError         // the data or the statement: the same batch will fail again
)

func kindOf(err error) errKind {
	reason := func(r string) errKind {
		switch {
		case retryReasons[r]:
			return transientError
		case badReasons[r]:
			return permanentError
		}
		return otherError
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		if ge.Code >= 500 || ge.Code == http.StatusTooManyRequests {
			return transientError
		}
		for _, e := range ge.Errors {
			if k := reason(e.Reason); k != otherError {
				return k
			}
		}
		if ge.Code == http.StatusBadRequest {
			return permanentError
		}
		return otherError
	}
	var be *bigquery.Error
	if errors.As(err, &be) {
		return reason(be.Reason)
	}
	if errors.Is(err, context.Canceled) {
		return otherError
	}
	return transientError
}

func permanent(err error) bool { return kindOf(err) == permanentError }
func transient(err error) bool { return kindOf(err) == transientError }

func isStatus(err error, code int) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == code
}
