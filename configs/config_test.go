package configs

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const examplePath = "sendpilot-loader.example.yaml"

func noEnv(string) string { return "" }

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func parse(t *testing.T, args []string, getenv func(string) string) (Config, []string, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Parse(fs, args, getenv, BindServe)
}

// The example file must say exactly the defaults, so it cannot drift from the code.
func TestExampleFileIsTheDefaults(t *testing.T) {
	cfg, _, err := parse(t, []string{"--config", examplePath}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg, Defaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("example file differs from Defaults:\n got %+v\nwant %+v", got, want)
	}
}

// Every setting must appear in the example file, with a comment.
func TestExampleFileNamesEverySetting(t *testing.T) {
	raw, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name := prefix + strings.ToUpper(k.Value)
			if v.Kind == yaml.MappingNode {
				walk(v, name+"_")
				continue
			}
			if k.LineComment == "" && v.LineComment == "" && k.HeadComment == "" {
				t.Errorf("setting %s has no comment", name)
			}
			keys = append(keys, name)
		}
	}
	walk(root.Content[0], EnvPrefix)
	if got, want := keys, EnvNames(); !slices.Equal(got, want) {
		t.Errorf("example file settings:\n got %v\nwant %v", got, want)
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:1\ndata_dir: /from/file\nwebhook:\n  secrets: [file-secret]\n  max_body_bytes: 1MiB\n"), 0o644)

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		listen  string
		dataDir string
		secrets []string
		maxBody ByteSize
	}{
		{"defaults", nil, nil, "127.0.0.1:8080", "./data", nil, 64 * MiB},
		{"file", []string{"--config", file}, nil, "127.0.0.1:1", "/from/file", []string{"file-secret"}, MiB},
		{"file from env", nil, map[string]string{"SENDPILOT_CONFIG": file}, "127.0.0.1:1", "/from/file", []string{"file-secret"}, MiB},
		{"env over file", []string{"--config", file}, map[string]string{
			"SENDPILOT_LISTEN": "127.0.0.1:2", "SENDPILOT_WEBHOOK_SECRETS": "a, b", "SENDPILOT_WEBHOOK_MAX_BODY_BYTES": "2MiB",
		}, "127.0.0.1:2", "/from/file", []string{"a", "b"}, 2 * MiB},
		{"flags over env", []string{"--config", file, "--listen", "127.0.0.1:3", "--webhook-secret", "x", "--webhook-secret", "y", "--data-dir", "/flag"},
			map[string]string{"SENDPILOT_LISTEN": "127.0.0.1:2", "SENDPILOT_WEBHOOK_SECRETS": "a"}, "127.0.0.1:3", "/flag", []string{"x", "y"}, MiB},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := parse(t, tc.args, envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Listen != tc.listen || cfg.DataDir != tc.dataDir || !slices.Equal(cfg.Webhook.Secrets, tc.secrets) || cfg.Webhook.MaxBodyBytes != tc.maxBody {
				t.Errorf("got listen=%s data_dir=%s secrets=%v max_body=%s", cfg.Listen, cfg.DataDir, cfg.Webhook.Secrets, cfg.Webhook.MaxBodyBytes)
			}
		})
	}
}

func TestRejectsBadSettings(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("webhook:\n  secret: [oops]\n"), 0o644)
	enforceFile := filepath.Join(dir, "enforce.yaml")
	os.WriteFile(enforceFile, []byte("webhook:\n  signature_mode: enforce\n"), 0o644)
	nanFile := filepath.Join(dir, "nan.yaml")
	os.WriteFile(nanFile, []byte("buffer:\n  max_bytes: NaN GiB\n"), 0o644)
	const noSecret = "signature_mode is enforce but no webhook secret is configured"
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown yaml key", []string{"--config", typo}, nil, "field secret not found"},
		{"missing file", []string{"--config", filepath.Join(dir, "none.yaml")}, nil, "read config"},
		{"bad mode", []string{"--signature-mode", "strict"}, nil, "signature_mode"},
		{"bad env duration", nil, map[string]string{"SENDPILOT_BUFFER_SEGMENT_MAX_AGE": "soon"}, "SENDPILOT_BUFFER_SEGMENT_MAX_AGE"},
		{"bad size flag", []string{"--max-body-bytes", "lots"}, nil, "byte size"},
		{"tls half", []string{"--tls-cert", "c.pem"}, nil, "tls_key"},
		{"bad listen", []string{"--listen", "nowhere"}, nil, "listen"},
		{"enforce without secret, flag", []string{"--signature-mode", "enforce"}, nil, noSecret},
		{"enforce without secret, env", nil, map[string]string{"SENDPILOT_WEBHOOK_SIGNATURE_MODE": "enforce"}, noSecret},
		{"enforce without secret, file", []string{"--config", enforceFile}, nil, noSecret},
		{"NaN size", []string{"--max-body-bytes", "NaNMiB"}, nil, "byte size"},
		{"NaN size in file", []string{"--config", nanFile}, nil, "byte size"},
		{"infinite size", []string{"--buffer-max-bytes", "InfGiB"}, nil, "byte size"},
		{"negative size", []string{"--max-body-bytes", "-1MiB"}, nil, "byte size"},
		{"overflowing size", []string{"--segment-max-bytes", "9000000TiB"}, nil, "byte size"},
		{"overflowing byte count", []string{"--segment-max-bytes", "9223372036854775808"}, nil, "byte size"},
		{"budget below the body limit", []string{"--max-body-bytes", "64MiB", "--max-inflight-bytes", "64MiB"}, nil, "max_inflight_bytes"},
		{"tiny memory limit", nil, map[string]string{"SENDPILOT_MEMORY_LIMIT": "128"}, "memory_limit"},
		{"tiny duckdb memory limit", nil, map[string]string{"SENDPILOT_LOAD_DUCKDB_MEMORY_LIMIT": "1MiB"}, "load.duckdb_memory_limit"},
		{"zero step timeout", []string{"--bigquery-step-timeout", "0s"}, nil, "bigquery.step_timeout must be positive"},
		{"bad env poll interval", nil, map[string]string{"SENDPILOT_BIGQUERY_POLL_INTERVAL": "often"}, "SENDPILOT_BIGQUERY_POLL_INTERVAL"},
		{"poll slower than deadline", []string{"--bigquery-step-timeout", "5s", "--bigquery-poll-interval", "10s"}, nil, "bigquery.poll_interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parse(t, tc.args, envOf(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// auto, the default, enforces signatures when there is a secret and only logs them when there is none; an
// explicit mode is kept as given.
func TestSignatureModeResolution(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, SignatureLog},
		{[]string{"--webhook-secret", "s"}, nil, SignatureEnforce},
		{nil, map[string]string{"SENDPILOT_WEBHOOK_SECRETS": "s"}, SignatureEnforce},
		{[]string{"--signature-mode", "enforce", "--webhook-secret", "s"}, nil, SignatureEnforce},
		{[]string{"--signature-mode", "log"}, nil, SignatureLog},
		{[]string{"--signature-mode", "log", "--webhook-secret", "s"}, nil, SignatureLog},
		{[]string{"--signature-mode", "off"}, nil, SignatureOff},
	}
	for _, tc := range tests {
		cfg, _, err := parse(t, tc.args, envOf(tc.env))
		if err != nil {
			t.Fatalf("%v %v: %v", tc.args, tc.env, err)
		}
		if got := cfg.Webhook.EffectiveSignatureMode(); got != tc.want {
			t.Errorf("%v %v: mode %s, want %s", tc.args, tc.env, got, tc.want)
		}
	}
	if d := Defaults().Webhook.TimestampTolerance; d < 78*time.Minute {
		t.Errorf("default timestamp tolerance %v does not cover SendPilot's retries (1 h 18 min)", d)
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"512", 512, true}, {"64MiB", 64 * MiB, true}, {"64 mib", 64 * MiB, true}, {"1.5GiB", 3 * GiB / 2, true},
		{"10GB", 10e9, true}, {"2KiB", 2 * KiB, true}, {"", 0, false}, {"-1", 0, false}, {"MiB", 0, false}, {"3 parsecs", 0, false},
		{"NaN", 0, false}, {"NaNMiB", 0, false}, {"nan KiB", 0, false}, {"InfGiB", 0, false}, {"-0.5KiB", 0, false},
		{"8EB", 0, false}, {"8388608TiB", 0, false}, {"8388607TiB", 8388607 * TiB, true}, {"1e400B", 0, false},
		{"9223372036854775807", 9223372036854775807, true}, {"9223372036854775808", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseByteSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	for _, b := range []ByteSize{1, 1023, KiB, 64 * MiB, 20 * GiB, 3 * TiB} {
		if got, _ := ParseByteSize(b.String()); got != b {
			t.Errorf("round trip of %d via %q gave %d", b, b.String(), got)
		}
	}
}

func TestEnvNames(t *testing.T) {
	names := EnvNames()
	for _, want := range []string{"SENDPILOT_LISTEN", "SENDPILOT_DATA_DIR", "SENDPILOT_WEBHOOK_SECRETS", "SENDPILOT_WEBHOOK_SIGNATURE_MODE", "SENDPILOT_SERVER_TLS_CERT"} {
		if !slices.Contains(names, want) {
			t.Errorf("EnvNames lacks %s", want)
		}
	}
}
