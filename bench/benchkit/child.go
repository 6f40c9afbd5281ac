package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"sendpilot-loader/configs"
)

// waitDelay bounds how long Run waits for a killed child's output pipes to close (a grandchild may hold them).
const waitDelay = 10 * time.Second

// Command is one child process whose cost a benchmark measures. Running it in a process of its own makes the
// peak RSS the kernel reports for it that command's alone.
type Command struct {
	Path string
	Args []string
	// Env is the child's environment; nil means this process's.
	Env []string
	// Output receives the child's stdout and stderr; nil discards them.
	Output io.Writer
	// Timeout, when positive, kills the child after this long; Run then returns an error.
	Timeout time.Duration
}

// Usage is what a child process cost.
type Usage struct {
	Elapsed time.Duration // wall time from start to exit
	CPU     time.Duration // user plus system time
	PeakRSS int64         // bytes: the child's maximum resident set size, from its rusage
}

// Run starts the command, waits for it to exit (or for its timeout or ctx to end it: then its process group
// is killed) and reports its cost. A non-zero exit, a kill and a timeout are errors; the usage is filled in as
// far as the child got.
func (c Command) Run(ctx context.Context) (Usage, error) {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = c.Env
	cmd.Stdout, cmd.Stderr = c.Output, c.Output
	// The child leads a process group of its own, and a timeout kills the whole group: a grandchild holding
	// the output pipe would otherwise outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	start := time.Now()
	err := cmd.Run()
	u := Usage{Elapsed: time.Since(start)}
	if ps := cmd.ProcessState; ps != nil {
		u.CPU = ps.UserTime() + ps.SystemTime()
		u.PeakRSS = PeakRSS(ps)
	}
	name := filepath.Base(c.Path)
	if len(c.Args) > 0 {
		name += " " + c.Args[0]
	}
	switch {
	case err == nil:
		return u, nil
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return u, fmt.Errorf("run %s: killed after the %v timeout: %w", name, c.Timeout, err)
	default:
		return u, fmt.Errorf("run %s: %w", name, err)
	}
}

// PeakRSS returns the peak resident set size of an exited process in bytes, from its rusage (0 if unknown).
func PeakRSS(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return int64(ru.Maxrss) << 10 // KiB on Linux
	}
	return 0
}

// LoaderEnv is this process's environment without any SENDPILOT_ setting and with no configuration file, so
// that a sendpilot-loader child runs with the defaults (a developer's configuration or a test hook must not
// change what is measured), plus extra ("KEY=value") settings.
func LoaderEnv(extra ...string) []string {
	return append(append(configs.WithoutEnv(os.Environ()), configs.EnvConfigFile+"="), extra...)
}

// BuildLoader builds the sendpilot-loader binary into dir and returns its path.
func BuildLoader(ctx context.Context, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create build dir: %w", err)
	}
	bin, err := filepath.Abs(filepath.Join(dir, "sendpilot-loader"))
	if err != nil {
		return "", fmt.Errorf("resolve build dir: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "sendpilot-loader/cmd/sendpilot-loader")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build sendpilot-loader: %w\n%s", err, out)
	}
	return bin, nil
}
