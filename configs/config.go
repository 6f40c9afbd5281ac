// Package configs holds the service's configuration: its type, its defaults, and loading it from a YAML file,
// SENDPILOT_* environment variables and command-line flags, in that order of increasing precedence.
//
// Every other package receives plain values from a Config; nothing else reads the environment.
package configs

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Signature modes for incoming webhooks.
const (
	// SignatureAuto, the default, is enforce when a secret is configured and log, with a loud warning, when
	// none is: the service runs with no configuration at all, and says it cannot check signatures.
	SignatureAuto = "auto"
	// SignatureEnforce rejects a delivery whose signature is missing, wrong or stale with 401; nothing is stored.
	SignatureEnforce = "enforce"
	// SignatureLog stores every delivery and records the signature verdict in its envelope.
	SignatureLog = "log"
	// SignatureOff stores every delivery without looking at the signature.
	SignatureOff = "off"
)

// Config is the whole configuration of sendpilot-loader. The zero value is not useful; start from Defaults.
type Config struct {
	// Listen is the TCP address the webhook server binds to.
	Listen string `yaml:"listen"`
	// DataDir holds the buffer, the archive, the load state and the default DuckDB warehouse.
	DataDir string `yaml:"data_dir"`
	// LogLevel is one of debug, info, warn, error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json.
	LogFormat string `yaml:"log_format"`
	// MemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT, which wins when set); the collector works
	// harder as the heap nears it. While a load holds the DuckDB file open, load.duckdb_memory_limit comes out
	// of it (never below half), so Go and DuckDB together stay near it. Zero leaves Go's default.
	MemoryLimit ByteSize `yaml:"memory_limit"`

	Webhook  Webhook  `yaml:"webhook"`
	Server   Server   `yaml:"server"`
	Buffer   Buffer   `yaml:"buffer"`
	Load     Load     `yaml:"load"`
	BigQuery BigQuery `yaml:"bigquery"`
}

// BigQuery selects and configures the BigQuery warehouse. With no project, loads go to the local DuckDB file.
type BigQuery struct {
	// Project is the Google Cloud project that runs the jobs and holds the dataset; credentials come from
	// Application Default Credentials.
	Project string `yaml:"project"`
	// Dataset holds the tables; it is created if missing.
	Dataset string `yaml:"dataset"`
	// Location of the dataset and jobs, e.g. US or europe-west1; empty lets BigQuery choose.
	Location string `yaml:"location"`
	// Bucket, when set, stages Parquet files in this Cloud Storage bucket and loads them from there (retried by
	// the client library); otherwise files are uploaded with each load job.
	Bucket string `yaml:"bucket"`
	// EmulatorHost, when set (host:port), sends every BigQuery call to an emulator such as
	// goccy/bigquery-emulator over plain HTTP, without credentials, as the other Google SDKs do with their
	// *_EMULATOR_HOST variables. For local trials and tests only.
	EmulatorHost string `yaml:"emulator_host"`
	// StepTimeout bounds every BigQuery or Cloud Storage request (an upload included) and every wait for one
	// job. A job still running when it ends is waited for again by the next load, never run twice.
	StepTimeout time.Duration `yaml:"step_timeout"`
	// PollInterval is how often the status of a running BigQuery job is read.
	PollInterval time.Duration `yaml:"poll_interval"`
}

// Load configures batch loads into the warehouse.
type Load struct {
	// Schedule is when serve runs a load: a robfig/cron spec, "@every 1m" or five fields such as "*/5 * * * *".
	// Empty disables scheduled loads in serve (run "sendpilot-loader load" from an external scheduler).
	Schedule string `yaml:"schedule"`
	// DuckDBPath is the local warehouse file; empty means <data_dir>/warehouse.duckdb.
	DuckDBPath string `yaml:"duckdb_path"`
	// DuckDBMemoryLimit caps DuckDB's memory during a load; 0 leaves DuckDB's default (80% of RAM).
	DuckDBMemoryLimit ByteSize `yaml:"duckdb_memory_limit"`
	// MaxBatchBytes bounds the segments one batch takes.
	MaxBatchBytes ByteSize `yaml:"max_batch_bytes"`
	// Attempts and Backoff: a failing load is tried this many times per run, waiting Backoff, then twice that.
	Attempts int           `yaml:"attempts"`
	Backoff  time.Duration `yaml:"backoff"`
	// ArchiveRetention removes archived segments older than this; 0 keeps them forever.
	ArchiveRetention time.Duration `yaml:"archive_retention"`
}

// Webhook configures how deliveries are accepted.
type Webhook struct {
	// Path is the URL path SendPilot posts to.
	Path string `yaml:"path"`
	// Secrets are the webhook signing secrets; every one is tried, so two can be valid during a rotation.
	Secrets []string `yaml:"secrets"`
	// SignatureMode is auto, enforce, log or off. Only auto may run without a secret: enforce given explicitly
	// with no secret is a configuration error, never a silent fall back to log.
	SignatureMode string `yaml:"signature_mode"`
	// TimestampTolerance rejects (enforce) or flags (log) signatures whose t= is further than this from now;
	// zero disables the check. t= may be in seconds or milliseconds. The default, 2 h, covers SendPilot's
	// documented retries (about 1 h 18 min after the first attempt), in case a retry keeps its first t=.
	TimestampTolerance time.Duration `yaml:"timestamp_tolerance"`
	// MaxBodyBytes is the largest body accepted; a larger one is answered 413 and not stored.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes"`
	// MaxInflightBytes bounds the memory the bodies of all deliveries being received or stored hold
	// together; a delivery that would pass it is answered 503 with Retry-After and not stored.
	MaxInflightBytes ByteSize `yaml:"max_inflight_bytes"`
}

// inflightHeadroom is what max_inflight_bytes needs beyond max_body_bytes: the envelope around the largest body.
const inflightHeadroom = MiB

// minMemoryLimit is the smallest non-zero memory limit accepted; anything smaller is a unit mistake
// ("128" for 128 bytes), in which neither the Go runtime nor DuckDB can work.
const minMemoryLimit = 16 * MiB

// EffectiveSignatureMode resolves auto: enforce with a secret, log without one.
func (w Webhook) EffectiveSignatureMode() string {
	if w.SignatureMode != SignatureAuto {
		return w.SignatureMode
	}
	if len(w.Secrets) == 0 {
		return SignatureLog
	}
	return SignatureEnforce
}

// Server configures the HTTP server.
type Server struct {
	// ReadHeaderTimeout bounds how long a client may take to send its request headers.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds how long a client may take to send the whole request, body included.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds the time from the end of the request headers to the end of the response.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout bounds how long a keep-alive connection may sit idle.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ShutdownTimeout bounds how long a graceful shutdown waits for in-flight requests.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// TLSCert and TLSKey, when both set, make the server speak HTTPS itself.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// Buffer configures the on-disk segment log.
type Buffer struct {
	// SegmentMaxBytes seals the active segment once it reaches this size.
	SegmentMaxBytes ByteSize `yaml:"segment_max_bytes"`
	// SegmentMaxAge seals a non-empty active segment once its first record is this old.
	SegmentMaxAge time.Duration `yaml:"segment_max_age"`
	// MaxBytes is the quota for everything under the buffer directory; past it deliveries get 503. Zero means none.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MinFreeBytes answers 503 while the file system has less free space than this. Zero disables the check.
	MinFreeBytes ByteSize `yaml:"min_free_bytes"`
}

// Defaults returns the configuration used where nothing else is said.
func Defaults() Config {
	return Config{
		Listen:    "127.0.0.1:8080",
		DataDir:   "./data",
		LogLevel:  "info",
		LogFormat: "text",
		// A transform holds about 110 MiB of live data: at 160 MiB it runs as fast as without a limit (250 MB of
		// corpus: 6.1 CPU s either way, 231 MB peak RSS; 128 MiB costs 10% more CPU), and together with DuckDB's
		// 64 MiB a 1 GB backfill peaks under 300 MB.
		MemoryLimit: 160 * MiB,
		Webhook: Webhook{
			Path:               "/webhooks/sendpilot",
			SignatureMode:      SignatureAuto,
			TimestampTolerance: 2 * time.Hour,
			MaxBodyBytes:       64 * MiB,
			// Room for one largest body, or three 24 MiB ones at a time: 16 concurrent 24 MiB deliveries peak at
			// ~155 MB RSS at the default memory_limit (a 128 MiB budget: ~300 MB at the former 224 MiB limit).
			MaxInflightBytes: 96 * MiB,
		},
		Server: Server{
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       20 * time.Second,
			WriteTimeout:      28 * time.Second,
			IdleTimeout:       90 * time.Second,
			ShutdownTimeout:   25 * time.Second,
		},
		Buffer: Buffer{
			SegmentMaxBytes: 64 * MiB,
			SegmentMaxAge:   60 * time.Second,
			MaxBytes:        20 * GiB,
			MinFreeBytes:    256 * MiB,
		},
		Load: Load{
			Schedule:      "@every 1m",
			MaxBatchBytes: 256 * MiB,
			// DuckDB's RSS is about 140 MB over this while it inserts (its code, the Parquet reader); 64 MiB
			// inserts 250 MB of corpus at 3% more CPU than 128 MiB and 70 MB less peak RSS.
			DuckDBMemoryLimit: 64 * MiB,
			Attempts:          3,
			Backoff:           2 * time.Second,
		},
		BigQuery: BigQuery{Dataset: "sendpilot", StepTimeout: 10 * time.Minute, PollInterval: time.Second},
	}
}

// DuckDBFile is the local warehouse file.
func (c Config) DuckDBFile() string {
	if c.Load.DuckDBPath != "" {
		return c.Load.DuckDBPath
	}
	return filepath.Join(c.DataDir, "warehouse.duckdb")
}

// BufferDir is where the segment log lives.
func (c Config) BufferDir() string { return filepath.Join(c.DataDir, "buffer") }

// ArchiveDir is where loaded segments are kept, gzip'd, for backfills.
func (c Config) ArchiveDir() string { return filepath.Join(c.DataDir, "archive") }

// Validate reports every setting that cannot work, joined into one error.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen %q: %w", c.Listen, err)
	}
	if c.DataDir == "" {
		bad("data_dir must not be empty")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log_format %q: want text or json", c.LogFormat)
	}
	if !strings.HasPrefix(c.Webhook.Path, "/") {
		bad("webhook.path %q must start with /", c.Webhook.Path)
	}
	switch c.Webhook.SignatureMode {
	case SignatureEnforce:
		if len(c.Webhook.Secrets) == 0 {
			bad("webhook.signature_mode is enforce but no webhook secret is configured: set SENDPILOT_WEBHOOK_SECRETS " +
				"(or --webhook-secret, or webhook.secrets), or choose signature_mode log or auto to store unverified deliveries")
		}
	case SignatureAuto, SignatureLog, SignatureOff:
	default:
		bad("webhook.signature_mode %q: want auto, enforce, log or off", c.Webhook.SignatureMode)
	}
	for i, s := range c.Webhook.Secrets {
		if strings.TrimSpace(s) == "" {
			bad("webhook.secrets[%d] is empty", i)
		}
	}
	if c.Webhook.TimestampTolerance < 0 {
		bad("webhook.timestamp_tolerance must not be negative")
	}
	if c.Webhook.MaxBodyBytes <= 0 {
		bad("webhook.max_body_bytes must be positive")
	}
	if c.Webhook.MaxInflightBytes < c.Webhook.MaxBodyBytes+inflightHeadroom {
		bad("webhook.max_inflight_bytes (%s) must be at least webhook.max_body_bytes (%s) plus %s, or the largest bodies are never accepted",
			c.Webhook.MaxInflightBytes, c.Webhook.MaxBodyBytes, inflightHeadroom)
	}
	for _, l := range []struct {
		name  string
		limit ByteSize
	}{{"memory_limit", c.MemoryLimit}, {"load.duckdb_memory_limit", c.Load.DuckDBMemoryLimit}} {
		if l.limit < 0 || l.limit > 0 && l.limit < minMemoryLimit {
			bad("%s (%s) must be 0 (no limit) or at least %s", l.name, l.limit, minMemoryLimit)
		}
	}
	if (c.Server.TLSCert == "") != (c.Server.TLSKey == "") {
		bad("server.tls_cert and server.tls_key go together")
	}
	for name, d := range map[string]time.Duration{
		"server.read_header_timeout": c.Server.ReadHeaderTimeout, "server.read_timeout": c.Server.ReadTimeout,
		"server.write_timeout": c.Server.WriteTimeout, "server.idle_timeout": c.Server.IdleTimeout,
		"server.shutdown_timeout": c.Server.ShutdownTimeout, "buffer.segment_max_age": c.Buffer.SegmentMaxAge,
		"bigquery.step_timeout": c.BigQuery.StepTimeout, "bigquery.poll_interval": c.BigQuery.PollInterval,
	} {
		if d <= 0 {
			bad("%s must be positive", name)
		}
	}
	if c.Buffer.SegmentMaxBytes < 4*KiB {
		bad("buffer.segment_max_bytes must be at least 4KiB")
	}
	if c.Buffer.MaxBytes < 0 || c.Buffer.MinFreeBytes < 0 {
		bad("buffer.max_bytes and buffer.min_free_bytes must not be negative")
	}
	if c.Buffer.MaxBytes > 0 && c.Buffer.MaxBytes < c.Webhook.MaxBodyBytes {
		bad("buffer.max_bytes (%s) is smaller than webhook.max_body_bytes (%s)", c.Buffer.MaxBytes, c.Webhook.MaxBodyBytes)
	}
	if c.Load.Schedule != "" {
		if _, err := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor).Parse(c.Load.Schedule); err != nil {
			bad("load.schedule %q: %w", c.Load.Schedule, err)
		}
	}
	if c.BigQuery.Project != "" && c.BigQuery.Dataset == "" {
		bad("bigquery.dataset is required with bigquery.project")
	}
	if c.BigQuery.PollInterval > 0 && c.BigQuery.StepTimeout > 0 && c.BigQuery.PollInterval >= c.BigQuery.StepTimeout {
		bad("bigquery.poll_interval (%s) must be shorter than bigquery.step_timeout (%s)", c.BigQuery.PollInterval, c.BigQuery.StepTimeout)
	}
	if c.Load.MaxBatchBytes <= 0 {
		bad("load.max_batch_bytes must be positive")
	}
	if c.Load.Attempts < 1 {
		bad("load.attempts must be at least 1")
	}
	if c.Load.Backoff < 0 || c.Load.ArchiveRetention < 0 {
		bad("load.backoff and load.archive_retention must not be negative")
	}
	return errors.Join(errs...)
}
