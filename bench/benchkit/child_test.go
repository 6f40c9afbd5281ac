package benchkit

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCommandRun(t *testing.T) {
	sh, err := lookSh()
	if err != nil {
		t.Skip(err)
	}
	tests := []struct {
		name    string
		script  string
		timeout time.Duration
		wantErr string // "" for success
		wantOut string
	}{
		{name: "success", script: "echo out; echo err >&2", wantOut: "out\nerr\n"},
		{name: "exit code", script: "exit 3", wantErr: "exit status 3"},
		{name: "timeout", script: "sleep 30", timeout: 100 * time.Millisecond, wantErr: "killed after the 100ms timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			u, err := Command{Path: sh, Args: []string{"-c", tt.script}, Output: &out, Timeout: tt.timeout}.Run(context.Background())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Run: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Run error = %v, want one containing %q", err, tt.wantErr)
			}
			if u.PeakRSS <= 0 {
				t.Errorf("PeakRSS = %d, want the child's peak RSS", u.PeakRSS)
			}
			if u.Elapsed <= 0 {
				t.Errorf("Elapsed = %v, want positive", u.Elapsed)
			}
			if out.String() != tt.wantOut {
				t.Errorf("output = %q, want %q", out.String(), tt.wantOut)
			}
		})
	}
}

// TestCommandTimeoutKillsGroup checks that a timeout ends the child's own children too: one that holds the
// output pipe would otherwise keep Run waiting and outlive the benchmark.
func TestCommandTimeoutKillsGroup(t *testing.T) {
	sh, err := lookSh()
	if err != nil {
		t.Skip(err)
	}
	var out bytes.Buffer
	_, err = Command{Path: sh, Args: []string{"-c", "sleep 30 & echo $!; wait"}, Output: &out, Timeout: 200 * time.Millisecond}.Run(context.Background())
	if err == nil {
		t.Fatal("Run returned no error after its timeout")
	}
	pid, perr := strconv.Atoi(strings.TrimSpace(out.String()))
	if perr != nil {
		t.Fatalf("read grandchild pid from %q: %v", out.String(), perr)
	}
	for range 100 { // up to 2 s for the kernel to finish the kill
		if !running(pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Fatalf("grandchild %d still runs after the timeout", pid)
}

// running reports whether pid is a live process (a zombie is not).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	_, rest, ok := strings.Cut(string(stat), ") ")
	return ok && !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

func lookSh() (string, error) {
	const sh = "/bin/sh"
	_, err := os.Stat(sh)
	return sh, err
}

func TestLoaderEnv(t *testing.T) {
	t.Setenv("SENDPILOT_DATA_DIR", "/somewhere")
	env := LoaderEnv("SENDPILOT_WEBHOOK_SECRETS=s")
	var got []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "SENDPILOT_") {
			got = append(got, kv)
		}
	}
	want := []string{"SENDPILOT_CONFIG=", "SENDPILOT_WEBHOOK_SECRETS=s"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("SENDPILOT_ settings = %q, want %q", got, want)
	}
}

func TestWriteCorpus(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int64{0, 1, 300_000} {
		a, b := filepath.Join(dir, "a.ndjson"), filepath.Join(dir, "b.ndjson")
		st, err := WriteCorpus(a, size, 7, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := WriteCorpus(b, size, 7, true); err != nil {
			t.Fatal(err)
		}
		da, _ := os.ReadFile(a)
		db, _ := os.ReadFile(b)
		if int64(len(da)) < size || (size == 0 && len(da) != 0) {
			t.Errorf("size %d: wrote %d bytes", size, len(da))
		}
		if !bytes.Equal(da, db) {
			t.Errorf("size %d: the same seed wrote different bytes", size)
		}
		lines := int64(0)
		sc := bufio.NewScanner(bytes.NewReader(da))
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), `{"v":`) {
				t.Fatalf("size %d: line %d is not an envelope: %.80s", size, lines+1, sc.Text())
			}
			lines++
		}
		if st.Events != lines {
			t.Errorf("size %d: stats count %d events, the file has %d lines", size, st.Events, lines)
		}
		if _, err := os.Stat(a + ".tmp"); err == nil {
			t.Errorf("size %d: the temporary file is left", size)
		}
	}
}
