// Package e2etest drives the real sendpilot-loader binary end to end, as SendPilot and an operator would: it
// builds and starts "serve" processes on loopback ports, posts a generated corpus from many concurrent clients
// (re-sending some events, as SendPilot's at-least-once delivery does, and mixing in bad inputs), and checks
// that the warehouse holds exactly the events that were acknowledged with a 2xx. The DuckDB end-to-end test
// and the BigQuery emulator's scale-out test share it.
package e2etest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sendpilot-loader/bench/corpus"
	"sendpilot-loader/configs"
	"sendpilot-loader/extract"
)

// Build compiles the sendpilot-loader binary into a temporary directory and returns its path. It builds in the
// main module's directory, so a test in another module (the emulator's) gets the same binary.
func Build(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sendpilot-loader")
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/sendpilot-loader")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build sendpilot-loader: %v\n%s", err, out)
	}
	return bin
}

// Server is a running "sendpilot-loader serve" process.
type Server struct {
	URL  string // the webhook URL
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// Start runs serve on a loopback port the kernel chooses, with the given environment added to this process's
// less every SENDPILOT_* variable (so the caller's configuration cannot change the test), and waits until it
// listens.
func Start(t testing.TB, bin, dataDir string, env []string, args ...string) *Server {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir}, args...)...)
	cmd.Env = append(Environ(os.Environ()), env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		io.Copy(io.Discard, pipe)
		s.err = cmd.Wait()
		close(s.done)
	}()
	select {
	case a := <-addr:
		s.URL = "http://" + a + "/webhooks/sendpilot"
	case <-s.done:
		t.Fatalf("serve exited before listening: %v\n%s", s.err, s.Log())
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("serve did not start listening:\n%s", s.Log())
	}
	return s
}

// Pid is the server's process ID.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Environ returns environ without the variables that configure sendpilot-loader (those starting with
// configs.EnvPrefix).
func Environ(environ []string) []string { return configs.WithoutEnv(environ) }

// Log returns what the server has logged so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Exited reports whether the process has exited (e.g. killed itself at a crash point).
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Stop sends SIGTERM and waits (up to two minutes) for a clean exit.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if s.err != nil {
			t.Errorf("serve did not exit cleanly: %v\n%s", s.err, s.Log())
		}
	case <-time.After(2 * time.Minute):
		s.cmd.Process.Kill()
		t.Errorf("serve did not stop within 2 minutes:\n%s", s.Log())
	}
}

// Kind is what a posted input is, and so which answer it must get.
type Kind string

// The kinds of input Send posts. Valid and unknown-type events must end up in the warehouse once; the others
// never as events.
const (
	Valid        Kind = "valid"         // a corpus event, signed: 200
	Unknown      Kind = "unknown-type"  // a signed event with a name SendPilot never documented: 200
	BadSignature Kind = "bad-signature" // signed with another secret: 401, nothing stored
	Malformed    Kind = "malformed"     // signed, not JSON: 200, stored and quarantined by the transform
	Oversized    Kind = "oversized"     // signed, over the body limit: 413, nothing stored
)

// Want is the documented answer to each kind (docs/http-api.md).
var Want = map[Kind]int{Valid: 200, Unknown: 200, BadSignature: 401, Malformed: 200, Oversized: 413}

// Traffic says what Send posts.
type Traffic struct {
	Secret string
	Events int     // distinct valid corpus events
	Resend float64 // fraction of them delivered a second time, to any target
	Bad    int     // inputs of each bad kind (bad signature, malformed, oversized, unknown type)
	// OutreachOnly leaves out the corpus's lead extractor and database jobs (with their hundreds of child rows),
	// for warehouses too slow for them, such as the BigQuery emulator.
	OutreachOnly bool
	Clients      int
	Rate         float64 // inputs started per second, all clients together (0: as fast as they go)
	Seed         uint64
	// MaxBodyBytes is the server's body limit; oversized inputs are a little over it.
	MaxBodyBytes int
	// Targets returns the webhook URLs that are up now; each attempt goes to one of them at random.
	Targets func() []string
	// Deadline bounds the whole run; an input not answered by then is reported as unanswered.
	Deadline time.Time
}

// Outcome is what Send saw.
type Outcome struct {
	Acked      map[string]bool // event IDs of valid and unknown-type inputs that got a 2xx
	Unanswered []string        // inputs that got no definitive answer before the deadline
	Wrong      []string        // inputs whose definitive answer was not the documented one
	NotEvents  map[string]Kind // event IDs that must never become events (bad signature, oversized, malformed)
	Unknown    map[string]bool // event IDs of unknown-type inputs
	Expect     corpus.Stats    // rows the acknowledged valid events must produce
	Posts      int             // requests made, retries included
	Retries    int             // requests that failed (connection refused or reset, 503) and were tried again
}

type input struct {
	kind  Kind
	id    string
	body  []byte
	stats corpus.Stats
}

var eventIDRE = regexp.MustCompile(`"eventId":"([^"]+)"`)

// inputs builds the shuffled list of inputs.
func inputs(tr Traffic) []input {
	rng := rand.New(rand.NewPCG(tr.Seed, 7))
	g := corpus.New(tr.Seed, false)
	var out []input
	for valid := 0; valid < tr.Events; {
		line, st := g.Next(nil)
		if tr.OutreachOnly && st.Leads > 0 {
			continue
		}
		valid++
		in := input{kind: Valid, id: string(eventIDRE.FindSubmatch(line)[1]), body: line, stats: st}
		out = append(out, in)
		if rng.Float64() < tr.Resend {
			out = append(out, in)
		}
	}
	for i := range tr.Bad {
		id := fmt.Sprintf("e2e_bad_%d_%d", tr.Seed, i)
		out = append(out,
			input{kind: Unknown, id: id + "_unknown", body: fmt.Appendf(nil, `{"eventId":"%s_unknown","eventType":"inbox.thread.archived","timestamp":"2024-03-01T00:00:00Z","data":{"n":%d}}`, id, i)},
			input{kind: BadSignature, id: id + "_sig", body: fmt.Appendf(nil, `{"eventId":"%s_sig","eventType":"message.sent","timestamp":"2024-03-01T00:00:00Z","data":{}}`, id)},
			input{kind: Malformed, id: id + "_json", body: fmt.Appendf(nil, `{"eventId":"%s_json","eventType":"message.sent","data":{`, id)},
			input{kind: Oversized, id: id + "_big", body: fmt.Appendf(nil, `{"eventId":"%s_big","eventType":"message.sent","data":{"pad":"%s"}}`, id, strings.Repeat("x", tr.MaxBodyBytes))},
		)
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// Send posts every input from tr.Clients concurrent clients. Like SendPilot, a client tries an input again
// (after a short pause, at any target) while the answer is a connection error or a 503, and stops at the first
// other answer, which must be the documented one for the input's kind.
func Send(ctx context.Context, tr Traffic) *Outcome {
	all := inputs(tr)
	o := &Outcome{Acked: map[string]bool{}, NotEvents: map[string]Kind{}, Unknown: map[string]bool{}}
	var mu sync.Mutex
	work := make(chan input)
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for c := range tr.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(tr.Seed, uint64(c)))
			for in := range work {
				code, posts := deliver(ctx, client, rng, tr, in)
				mu.Lock()
				o.Posts += posts
				o.Retries += posts - 1
				switch {
				case code == 0:
					o.Unanswered = append(o.Unanswered, in.id)
				case code != Want[in.kind]:
					o.Wrong = append(o.Wrong, fmt.Sprintf("%s %s: %d, want %d", in.kind, in.id, code, Want[in.kind]))
				}
				switch in.kind {
				case Valid, Unknown:
					if code/100 == 2 && !o.Acked[in.id] {
						o.Acked[in.id] = true
						o.Expect.Events++
						o.Expect.Leads += in.stats.Leads
						o.Expect.Experience += in.stats.Experience
						o.Expect.Education += in.stats.Education
					}
					if in.kind == Unknown {
						o.Unknown[in.id] = true
					}
				default:
					o.NotEvents[in.id] = in.kind
				}
				mu.Unlock()
			}
		}()
	}
	var tick <-chan time.Time
	if tr.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / tr.Rate))
		defer t.Stop()
		tick = t.C
	}
	for _, in := range all {
		if tick != nil {
			<-tick
		}
		select {
		case work <- in:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return o
}

// deliver posts one input until it gets a definitive answer or the deadline passes, and returns the answer
// (0 for none) and the number of requests made.
func deliver(ctx context.Context, client *http.Client, rng *rand.Rand, tr Traffic, in input) (int, int) {
	posts := 0
	for time.Now().Before(tr.Deadline) && ctx.Err() == nil {
		targets := tr.Targets()
		if len(targets) == 0 {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		posts++
		secret := tr.Secret
		if in.kind == BadSignature {
			secret = "whsec_not_the_secret"
		}
		req, err := extract.NewSignedRequest(ctx, targets[rng.IntN(len(targets))], secret, in.body)
		if err != nil {
			return 0, posts
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				return resp.StatusCode, posts
			}
		}
		time.Sleep(time.Duration(20+rng.IntN(80)) * time.Millisecond)
	}
	return 0, posts
}

// Check compares the warehouse with the outcome: every acknowledged event stored exactly once, nothing stored
// that was refused, unknown names kept as "unknown", and the child tables holding exactly the rows the
// acknowledged events carry. query runs one SQL statement on the warehouse and returns its rows.
func Check(t *testing.T, o *Outcome, query func(q string) [][]any) {
	t.Helper()
	if len(o.Unanswered) > 0 {
		t.Errorf("%d inputs got no answer before the deadline, e.g. %s", len(o.Unanswered), o.Unanswered[0])
	}
	for _, w := range o.Wrong {
		t.Errorf("wrong answer: %s", w)
	}
	stored := map[string]int64{}
	types := map[string]string{}
	for _, row := range query("SELECT event_id, event_type, COUNT(*) FROM events GROUP BY event_id, event_type") {
		id := fmt.Sprint(row[0])
		stored[id] += toInt(row[2])
		types[id] = fmt.Sprint(row[1])
	}
	var missing, extra, dup []string
	for id := range o.Acked {
		if stored[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id, n := range stored {
		if n > 1 {
			dup = append(dup, fmt.Sprintf("%s×%d", id, n))
		}
		if !o.Acked[id] {
			extra = append(extra, id)
		}
		if kind, ok := o.NotEvents[id]; ok {
			t.Errorf("%s input %s is in the events table", kind, id)
		}
	}
	for id := range o.Unknown {
		if o.Acked[id] && types[id] != "unknown" {
			t.Errorf("unknown event %s stored as %q", id, types[id])
		}
	}
	if len(missing)+len(extra)+len(dup) > 0 {
		t.Errorf("warehouse differs from the acknowledged set: %d missing (e.g. %v), %d not acknowledged (e.g. %v), %d duplicated (e.g. %v)",
			len(missing), head(missing), len(extra), head(extra), len(dup), head(dup))
	}
	for table, want := range map[string]int64{"events": o.Expect.Events, "leads": o.Expect.Leads, "experience": o.Expect.Experience, "education": o.Expect.Education} {
		rows := query("SELECT COUNT(*) FROM " + table)
		if got := toInt(rows[0][0]); got != want {
			t.Errorf("%s: %d rows, want %d", table, got, want)
		}
	}
}

func toInt(v any) int64 {
	n, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64)
	return n
}

func head(xs []string) []string { return xs[:min(len(xs), 3)] }
