package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"sendpilot-loader/bench/benchkit"
)

const (
	// startTimeout bounds how long serve may take to log its listen address.
	startTimeout = 30 * time.Second
	// stopTimeout bounds a graceful stop: serve's shutdown_timeout (25 s) for requests, then as long again
	// for a running load to finish, plus a margin. After it the child is killed.
	stopTimeout = 60 * time.Second
	// finalLoadTimeout bounds the "load" run after the child stopped.
	finalLoadTimeout = 5 * time.Minute
)

// listeningRE finds the address in serve's "listening" log line (text log format).
var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// buildBinary builds sendpilot-loader into a temporary directory and returns its path and a cleanup function.
func buildBinary(ctx context.Context) (string, func(), error) {
	dir, err := os.MkdirTemp("", "sendpilot-loader-bench-")
	if err != nil {
		return "", nil, fmt.Errorf("create build dir: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	fmt.Fprintln(os.Stderr, "building sendpilot-loader")
	bin, err := benchkit.BuildLoader(ctx, dir)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return bin, cleanup, nil
}

// childEnv is the environment of a serve child: the defaults (benchkit.LoaderEnv) and the webhook secret.
func childEnv() []string { return benchkit.LoaderEnv("SENDPILOT_WEBHOOK_SECRETS=" + secret) }

// child is a running "sendpilot-loader serve" process.
type child struct {
	cmd     *exec.Cmd
	url     string
	logPath string
	exited  chan struct{} // closed once the log is drained and Wait returned
	waitErr error         // valid after exited is closed

	batches    atomic.Int64 // "scheduled load" log lines: one per loaded batch
	loadErrors atomic.Int64 // ERROR log lines
	mu         sync.Mutex
	firstError string // the first ERROR line, for the report on stderr
}

// startServe runs serve on a loopback port chosen by the kernel, with signatures enforced and the given load
// schedule ("" disables loads), and waits until it listens. Its log goes to serve.log in dataDir.
func startServe(bin, dataDir, schedule string, segmentMaxAge time.Duration, config string) (*child, error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	logPath := filepath.Join(dataDir, "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create serve log: %w", err)
	}
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--signature-mode", "enforce", "--schedule", schedule, "--segment-max-age", segmentMaxAge.String(),
		"--log-format", "text", "--log-level", "info")
	if config != "" {
		cmd.Args = append(cmd.Args, "--config", config)
	}
	cmd.Env = childEnv()
	pipe, err := cmd.StderrPipe()
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("pipe serve stderr: %w", err)
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start serve: %w", err)
	}
	c := &child{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(c.exited)
		c.readLog(pipe, logFile, addr)
		logFile.Close()
		c.waitErr = cmd.Wait()
	}()
	select {
	case a := <-addr:
		c.url = "http://" + a + "/webhooks/sendpilot"
		return c, nil
	case <-c.exited:
		return nil, fmt.Errorf("start serve: exited before listening (%v); see %s", c.waitErr, logPath)
	case <-time.After(startTimeout):
		cmd.Process.Kill()
		<-c.exited
		return nil, fmt.Errorf("start serve: no listen address after %v; see %s", startTimeout, logPath)
	}
}

// readLog copies serve's log to w, sends the listen address to addr once and counts loads and errors.
func (c *child) readLog(r io.Reader, w io.Writer, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(w, line)
		switch {
		case !sent && listeningRE.MatchString(line):
			addr <- listeningRE.FindStringSubmatch(line)[1]
			sent = true
		case strings.Contains(line, `msg="scheduled load"`):
			c.batches.Add(1)
		case strings.Contains(line, "level=ERROR"):
			if c.loadErrors.Add(1) == 1 {
				c.mu.Lock()
				c.firstError = line
				c.mu.Unlock()
			}
		}
	}
	io.Copy(w, r) // a line longer than the scanner's buffer: keep the rest rather than block the child
}

// stop sends SIGTERM, waits for serve to shut down gracefully (killing it after stopTimeout) and returns its
// peak RSS in bytes, from the rusage of the exited process.
func (c *child) stop() (int64, error) {
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("signal serve: %w", err)
	}
	var err error
	select {
	case <-c.exited:
	case <-time.After(stopTimeout):
		c.cmd.Process.Kill()
		<-c.exited
		err = fmt.Errorf("stop serve: no exit %v after SIGTERM; killed", stopTimeout)
	}
	if c.waitErr != nil {
		err = errors.Join(err, fmt.Errorf("stop serve: %w; see %s", c.waitErr, c.logPath))
	}
	return benchkit.PeakRSS(c.cmd.ProcessState), err
}

// kill ends the child if it still runs; for error paths.
func (c *child) kill() {
	select {
	case <-c.exited:
	default:
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// firstErrorLine returns the first ERROR line serve logged, or "".
func (c *child) firstErrorLine() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.firstError
}

// finalLoad runs "sendpilot-loader load" on dataDir, which loads every sealed segment left by serve.
func finalLoad(ctx context.Context, bin, dataDir string) error {
	ctx, cancel := context.WithTimeout(ctx, finalLoadTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "load", "--data-dir", dataDir)
	cmd.Env = childEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("run final load: %w\n%s", err, out)
	}
	return nil
}
