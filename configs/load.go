package configs

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts the name of every environment variable the configuration reads.
const EnvPrefix = "SENDPILOT_"

// EnvConfigFile names the YAML file to read when --config is not given.
const EnvConfigFile = EnvPrefix + "CONFIG"

// WithoutEnv returns environ without the variables the configuration reads (those starting with EnvPrefix),
// for starting a sendpilot-loader process that must not inherit the caller's settings.
func WithoutEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if !strings.HasPrefix(kv, EnvPrefix) {
			out = append(out, kv)
		}
	}
	return out
}

// Parse builds a Config for one subcommand from, in increasing precedence: Defaults, the YAML file named by
// --config (or SENDPILOT_CONFIG), SENDPILOT_* environment variables, and the flags in args. bind registers the
// subcommand's flags on a flag set; it is called twice (once to find --config, once for real), so it must only
// register flags. Parse returns the positional arguments left after the flags, and flag.ErrHelp for -h.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string, bind func(*flag.FlagSet, *Config)) (Config, []string, error) {
	// First pass: only to learn where the file is. Errors are reported by the second pass.
	scratch := Defaults()
	probe := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	probe.SetOutput(io.Discard)
	path := probe.String("config", getenv(EnvConfigFile), "")
	bind(probe, &scratch)
	_, _ = parseInterspersed(probe, args)

	cfg := Defaults()
	if *path != "" {
		if err := cfg.loadFile(*path); err != nil {
			return cfg, nil, err
		}
	}
	if err := applyEnv(reflect.ValueOf(&cfg).Elem(), EnvPrefix, getenv); err != nil {
		return cfg, nil, err
	}

	fs.String("config", *path, "YAML configuration file (env "+EnvConfigFile+")")
	bind(fs, &cfg)
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return cfg, nil, err
	}
	if len(cfg.Webhook.Secrets) == 0 {
		cfg.Webhook.Secrets = nil // "secrets: []" and no secrets mean the same
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, fmt.Errorf("validate config: %w", err)
	}
	return cfg, rest, nil
}

// parseInterspersed parses flags wherever they are among the arguments ("report funnel --format csv" as well
// as "report --format csv funnel") and returns the other arguments in order. Everything after "--" is an
// argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		left := fs.Args()
		if len(left) == 0 {
			return rest, nil
		}
		if used := len(args) - len(left); used > 0 && args[used-1] == "--" {
			return append(rest, left...), nil
		}
		rest = append(rest, left[0])
		args = left[1:]
	}
}

// loadFile reads a YAML file over c; unknown keys are an error, so a typo cannot silently keep a default.
func (c *Config) loadFile(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("parse config %s: %w", path, err)
	}
	return nil
}

// EnvNames lists every environment variable the configuration reads, in struct order.
func EnvNames() []string {
	var names []string
	walkLeaves(reflect.TypeOf(Config{}), EnvPrefix, func(name string, _ []int) { names = append(names, name) })
	return names
}

// walkLeaves calls fn for every settable leaf of t with its environment name (prefix plus the upper-cased YAML
// path joined by "_") and its field index path.
func walkLeaves(t reflect.Type, prefix string, fn func(name string, index []int)) {
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			name := prefix + strings.ToUpper(tag)
			idx := append(append([]int(nil), index...), i)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
				walk(f.Type, name+"_", idx)
				continue
			}
			fn(name, idx)
		}
	}
	walk(t, prefix, nil)
}

// applyEnv sets every leaf of v whose environment variable is non-empty.
func applyEnv(v reflect.Value, prefix string, getenv func(string) string) error {
	var errs []error
	walkLeaves(v.Type(), prefix, func(name string, index []int) {
		raw := getenv(name)
		if raw == "" {
			return
		}
		if err := setFromString(v.FieldByIndex(index), raw); err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

// setFromString parses raw into the field f according to its type. Lists are comma-separated.
func setFromString(f reflect.Value, raw string) error {
	switch p := f.Addr().Interface().(type) {
	case *string:
		*p = raw
	case *[]string:
		*p = splitList(raw)
	case *bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return err
		}
		*p = b
	case *int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return err
		}
		*p = n
	case *time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return err
		}
		*p = d
	case *ByteSize:
		return p.Set(raw)
	default:
		return fmt.Errorf("unsupported setting type %s", f.Type())
	}
	return nil
}

func splitList(raw string) []string {
	var out []string
	for _, s := range strings.Split(raw, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// listFlag is a repeatable string flag whose first use replaces what the file or environment said.
type listFlag struct {
	dst     *[]string
	touched bool
}

func (l *listFlag) String() string {
	if l.dst == nil {
		return ""
	}
	return strconv.Itoa(len(*l.dst)) + " value(s)"
}

func (l *listFlag) Set(s string) error {
	if !l.touched {
		*l.dst, l.touched = nil, true
	}
	*l.dst = append(*l.dst, splitList(s)...)
	return nil
}

// BindCommon registers the flags every subcommand shares.
func BindCommon(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the buffer, archive, load state and local warehouse")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
}

// BindLoad registers the flags of the loader, shared by serve and load.
func BindLoad(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Load.Schedule, "schedule", c.Load.Schedule, `when serve loads: "@every 1m" or a 5-field cron spec; "" disables`)
	BindWarehouse(fs, c)
}

// BindWarehouse registers the flags that choose the warehouse, shared by the loader and the query commands.
func BindWarehouse(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.Load.DuckDBPath, "duckdb", c.Load.DuckDBPath, "local warehouse file (default <data-dir>/warehouse.duckdb)")
	fs.StringVar(&c.BigQuery.Project, "bigquery-project", c.BigQuery.Project, "load into BigQuery in this project (ADC credentials) instead of DuckDB")
	fs.StringVar(&c.BigQuery.Dataset, "bigquery-dataset", c.BigQuery.Dataset, "BigQuery dataset")
	fs.DurationVar(&c.BigQuery.StepTimeout, "bigquery-step-timeout", c.BigQuery.StepTimeout, "deadline of each BigQuery request and job wait")
	fs.DurationVar(&c.BigQuery.PollInterval, "bigquery-poll-interval", c.BigQuery.PollInterval, "how often a running BigQuery job's status is read")
}

// BindServe registers the flags of the webhook server.
func BindServe(fs *flag.FlagSet, c *Config) {
	BindCommon(fs, c)
	BindLoad(fs, c)
	fs.StringVar(&c.Listen, "listen", c.Listen, "address to listen on")
	fs.StringVar(&c.Webhook.Path, "webhook-path", c.Webhook.Path, "URL path SendPilot posts to")
	fs.StringVar(&c.Webhook.SignatureMode, "signature-mode", c.Webhook.SignatureMode, "auto (enforce with a secret, log without), enforce, log or off")
	fs.Var(&listFlag{dst: &c.Webhook.Secrets}, "webhook-secret", "webhook signing secret (repeatable; env SENDPILOT_WEBHOOK_SECRETS, comma-separated)")
	fs.DurationVar(&c.Webhook.TimestampTolerance, "timestamp-tolerance", c.Webhook.TimestampTolerance, "max distance of the signature's t= from now (0 disables)")
	fs.Var(&c.Webhook.MaxBodyBytes, "max-body-bytes", "largest accepted body, e.g. 64MiB")
	fs.Var(&c.Webhook.MaxInflightBytes, "max-inflight-bytes", "memory all bodies in flight may hold together; past it deliveries get 503")
	fs.StringVar(&c.Server.TLSCert, "tls-cert", c.Server.TLSCert, "TLS certificate file (serve HTTPS directly)")
	fs.StringVar(&c.Server.TLSKey, "tls-key", c.Server.TLSKey, "TLS private key file")
	fs.Var(&c.Buffer.SegmentMaxBytes, "segment-max-bytes", "seal the active segment at this size")
	fs.DurationVar(&c.Buffer.SegmentMaxAge, "segment-max-age", c.Buffer.SegmentMaxAge, "seal a non-empty active segment at this age")
	fs.Var(&c.Buffer.MaxBytes, "buffer-max-bytes", "quota for the buffer directory (0 = none)")
}
