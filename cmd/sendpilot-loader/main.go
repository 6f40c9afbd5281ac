// Command sendpilot-loader receives SendPilot webhooks, buffers them durably on disk and loads them into a
// warehouse. Run "sendpilot-loader help" for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"sendpilot-loader/configs"
)

// command is one subcommand. run returns the process exit code.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *environment, args []string) int
}

// environment is what a subcommand may touch of the outside world; tests substitute their own.
type environment struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

func commands() []command {
	return []command{
		{"serve", "receive webhooks and keep every one durably in the disk buffer", runServe},
		{"transform", "turn buffer segments or event files into Parquet tables, to inspect them", runTransform},
		{"load", "load everything pending into the warehouse now, batch after batch (--once: one batch), and exit", runLoad},
		{"status", "show pending segments, the oldest pending event and the last batch", runStatus},
		{"backfill", "replay archived or exported payload files into the warehouse, resumably", runBackfill},
		{"sql", "run a SQL query on the warehouse and print the rows (table, csv or json)", runSQL},
		{"report", "run a named analyst report from sql/reports; --list shows them", runReport},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, &environment{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, env *environment, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	fmt.Fprintf(env.stderr, "sendpilot-loader: unknown command %q\n\n", args[0])
	usage(env.stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: sendpilot-loader COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"sendpilot-loader COMMAND --help\" for a command's flags. Every flag has a SENDPILOT_* environment")
	fmt.Fprintln(w, "variable and a key in the YAML file given by --config; see configs/sendpilot-loader.example.yaml.")
}

// parseConfig parses a subcommand's flags into a Config. It returns ok=false with the exit code when the
// command should stop (help asked for, or bad flags).
func parseConfig(env *environment, name, synopsis string, args []string, bind func(*flag.FlagSet, *configs.Config)) (configs.Config, []string, int, bool) {
	fs := flag.NewFlagSet("sendpilot-loader "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: sendpilot-loader %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	cfg, rest, err := configs.Parse(fs, args, env.getenv, bind)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(env.stdout)
		fs.Usage()
		return cfg, nil, 0, false
	case err != nil:
		fmt.Fprintf(env.stderr, "sendpilot-loader %s: %v\n", name, err)
		return cfg, nil, 2, false
	}
	applyRuntime(cfg, env.getenv)
	return cfg, rest, 0, true
}

// applyRuntime sets the process-wide runtime limits from the configuration. GOMEMLIMIT, when set, wins.
func applyRuntime(cfg configs.Config, getenv func(string) string) {
	if cfg.MemoryLimit > 0 && getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(cfg.MemoryLimit))
	}
}

// newLogger builds the process logger from the configuration.
func newLogger(w io.Writer, cfg configs.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
