package kubernetes

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "sigs.k8s.io/yaml"
)

var (
	configsDir  = filepath.Join("..", "..")
	manifestDir = filepath.Join(configsDir, "kubernetes")
)

// documents splits a multi-document YAML file and decodes each document strictly into the API type of its
// apiVersion and kind.
func documents(t *testing.T, file string) []any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(manifestDir, file))
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var meta struct{ APIVersion, Kind string }
		if err := k8syaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s document %d: %v", file, i, err)
		}
		var obj any
		switch meta.APIVersion + " " + meta.Kind {
		case "apps/v1 StatefulSet":
			obj = &appsv1.StatefulSet{}
		case "v1 Service":
			obj = &corev1.Service{}
		default:
			t.Fatalf("%s document %d: unexpected %s %s", file, i, meta.APIVersion, meta.Kind)
		}
		if err := k8syaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s document %d (%s): %v", file, i, meta.Kind, err)
		}
		out = append(out, obj)
	}
	return out
}

// defaults reads the example configuration, which configs' tests keep equal to the defaults.
func defaults(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(configsDir, "sendpilot-loader.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func setting(t *testing.T, cfg map[string]any, path ...string) string {
	t.Helper()
	var v any = cfg
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("setting %v not in the example configuration", path)
		}
		v = m[p]
	}
	s, ok := v.(string)
	if !ok {
		t.Fatalf("setting %v is %T, not a string", path, v)
	}
	return s
}

// bytesSetting parses a byte size of the configuration ("224MiB") as a Kubernetes quantity.
func bytesSetting(t *testing.T, cfg map[string]any, path ...string) resource.Quantity {
	t.Helper()
	s := setting(t, cfg, path...)
	q, err := resource.ParseQuantity(strings.TrimSuffix(s, "B"))
	if err != nil {
		t.Fatalf("setting %v = %q: %v", path, s, err)
	}
	return q
}

// dockerfile returns the SENDPILOT_ variables the Dockerfile's ENV sets, and its USER.
func dockerfile(t *testing.T) (env map[string]string, user string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(configsDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	env = map[string]string{}
	for _, m := range regexp.MustCompile(`(SENDPILOT_[A-Z_]+)=(\S+)`).FindAllStringSubmatch(string(raw), -1) {
		env[m[1]] = m[2]
	}
	if m := regexp.MustCompile(`(?m)^USER (\S+)`).FindSubmatch(raw); m != nil {
		user = string(m[1])
	}
	return env, user
}

func TestStatefulSet(t *testing.T) {
	objs := documents(t, "statefulset.yaml")
	if len(objs) != 1 {
		t.Fatalf("statefulset.yaml holds %d objects, want 1", len(objs))
	}
	sts := objs[0].(*appsv1.StatefulSet)
	pod := sts.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	imageEnv, imageUser := dockerfile(t)

	// The data directory is a volume of its own per replica, mounted where the service writes.
	dataDir := env["SENDPILOT_DATA_DIR"].Value
	if dataDir == "" || dataDir != imageEnv["SENDPILOT_DATA_DIR"] {
		t.Errorf("SENDPILOT_DATA_DIR = %q, the image's is %q", dataDir, imageEnv["SENDPILOT_DATA_DIR"])
	}
	claims := map[string]bool{}
	for _, vct := range sts.Spec.VolumeClaimTemplates {
		claims[vct.Name] = true
		if len(vct.Spec.AccessModes) != 1 || vct.Spec.AccessModes[0] != corev1.ReadWriteOnce {
			t.Errorf("claim %s: access modes %v, want ReadWriteOnce only", vct.Name, vct.Spec.AccessModes)
		}
		if vct.Spec.Resources.Requests.Storage().IsZero() {
			t.Errorf("claim %s requests no storage", vct.Name)
		}
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == dataDir && claims[m.Name] && !m.ReadOnly && m.SubPath == "" {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("no volumeClaimTemplate is mounted read-write at the data directory %q (mounts %+v)", dataDir, c.VolumeMounts)
	}
	for _, v := range pod.Volumes {
		if claims[v.Name] {
			t.Errorf("volume %s shadows the claim template of the same name", v.Name)
		}
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want 1: the default DuckDB warehouse is a single-writer file", sts.Spec.Replicas)
	}

	// The port the server listens on, its probes and its scrape annotations agree.
	_, port, err := net.SplitHostPort(env["SENDPILOT_LISTEN"].Value)
	if err != nil || strings.HasPrefix(env["SENDPILOT_LISTEN"].Value, "127.") {
		t.Fatalf("SENDPILOT_LISTEN = %q: want a non-loopback host:port", env["SENDPILOT_LISTEN"].Value)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || strconv.Itoa(int(c.Ports[0].ContainerPort)) != port {
		t.Fatalf("container ports %+v: want one named http on %s", c.Ports, port)
	}
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: missing or not an HTTP GET", name)
			return
		}
		if p.HTTPGet.Path != path || p.HTTPGet.Port != intstr.FromString("http") {
			t.Errorf("%s probe: GET %s on port %s, want %s on http", name, p.HTTPGet.Path, p.HTTPGet.Port.StrVal, path)
		}
	}
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("startup", c.StartupProbe, "/healthz")
	probe("readiness", c.ReadinessProbe, "/readyz")
	ann := sts.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != port || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v: want scrape true, port %s, path /metrics", ann, port)
	}
	if s := env["SENDPILOT_WEBHOOK_SECRETS"]; s.ValueFrom == nil || s.ValueFrom.SecretKeyRef == nil {
		t.Errorf("SENDPILOT_WEBHOOK_SECRETS must come from a Secret, not a literal")
	}

	// The grace period covers both shutdown waits (in-flight requests, then a running load) with a margin.
	cfg := defaults(t)
	shutdown, err := time.ParseDuration(setting(t, cfg, "server", "shutdown_timeout"))
	if err != nil {
		t.Fatal(err)
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < 2*shutdown+30*time.Second {
		t.Errorf("terminationGracePeriodSeconds is unset or under 2 × server.shutdown_timeout (%v) + 30 s", shutdown)
	}

	// Memory: the request covers the Go soft limit plus DuckDB's cap, and the limit is above the request.
	floor := bytesSetting(t, cfg, "memory_limit")
	floor.Add(bytesSetting(t, cfg, "load", "duckdb_memory_limit"))
	req, lim := c.Resources.Requests.Memory(), c.Resources.Limits.Memory()
	if req.Cmp(floor) < 0 {
		t.Errorf("memory request %s is under memory_limit + load.duckdb_memory_limit = %s", req, &floor)
	}
	if lim.Cmp(*req) <= 0 {
		t.Errorf("memory limit %s is not above the request %s", lim, req)
	}

	// The pod runs as the image's user, and the volume is writable by its group.
	sc := pod.SecurityContext
	want := strings.Split(imageUser, ":")
	if sc == nil || sc.RunAsUser == nil || sc.FSGroup == nil || len(want) != 2 ||
		strconv.FormatInt(*sc.RunAsUser, 10) != want[0] || strconv.FormatInt(*sc.FSGroup, 10) != want[1] {
		t.Errorf("pod security context %+v: want runAsUser and fsGroup from the image's USER %s", sc, imageUser)
	}
}

func TestServices(t *testing.T) {
	sts := documents(t, "statefulset.yaml")[0].(*appsv1.StatefulSet)
	podLabels := sts.Spec.Template.Labels
	for k, v := range sts.Spec.Selector.MatchLabels {
		if podLabels[k] != v {
			t.Errorf("StatefulSet selector %s=%s does not match its pod labels %v", k, v, podLabels)
		}
	}
	var headless bool
	svcs := documents(t, "service.yaml")
	if len(svcs) != 2 {
		t.Fatalf("service.yaml holds %d objects, want 2", len(svcs))
	}
	for _, o := range svcs {
		svc := o.(*corev1.Service)
		if len(svc.Spec.Selector) == 0 {
			t.Errorf("service %s selects nothing", svc.Name)
		}
		for k, v := range svc.Spec.Selector {
			if podLabels[k] != v {
				t.Errorf("service %s selector %s=%s does not match the pod labels %v", svc.Name, k, v, podLabels)
			}
		}
		for _, p := range svc.Spec.Ports {
			if p.TargetPort != intstr.FromString("http") {
				t.Errorf("service %s port %d targets %s, want the container port named http", svc.Name, p.Port, p.TargetPort.StrVal)
			}
		}
		if svc.Name == sts.Spec.ServiceName {
			headless = svc.Spec.ClusterIP == corev1.ClusterIPNone
		}
	}
	if !headless {
		t.Errorf("serviceName %q is not a headless Service in service.yaml", sts.Spec.ServiceName)
	}
}
