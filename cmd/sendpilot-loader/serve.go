package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"sendpilot-loader/configs"
	"sendpilot-loader/extract"
	"sendpilot-loader/extract/buffer"
	"sendpilot-loader/load"
	"sendpilot-loader/transform"
)

func runServe(ctx context.Context, env *environment, args []string) int {
	cfg, rest, code, ok := parseConfig(env, "serve", "serve [flags]", args, configs.BindServe)
	if !ok {
		return code
	}
	log := newLogger(env.stderr, cfg)
	if len(rest) > 0 {
		log.Error("serve takes no arguments", "args", rest)
		return 2
	}
	if err := serve(ctx, cfg, log, env.getenv); err != nil {
		log.Error("serve stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs the webhook server until ctx is cancelled, then shuts down gracefully: it stops accepting
// connections, lets in-flight requests finish, and seals the active segment.
func serve(ctx context.Context, cfg configs.Config, log *slog.Logger, getenv func(string) string) error {
	// configs refuses an explicit enforce without a secret; only auto (the default) gets here with none.
	mode := cfg.Webhook.EffectiveSignatureMode()
	if len(cfg.Webhook.Secrets) == 0 && mode != configs.SignatureOff {
		log.Warn("NO WEBHOOK SECRET CONFIGURED: signatures are NOT enforced; every delivery is stored and " +
			"flagged no_secret. Set SENDPILOT_WEBHOOK_SECRETS (or --webhook-secret) to enforce them.")
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	buf, err := buffer.Open(cfg.BufferDir(), bufferOptions(cfg, log, reg))
	if err != nil {
		return fmt.Errorf("open buffer: %w", err)
	}

	sched, loader, err := startSchedule(cfg, log, reg, buf, getenv)
	if err != nil {
		buf.Close()
		return err
	}
	rc := extract.NewReceiver(extract.Options{
		Path:             cfg.Webhook.Path,
		SignatureMode:    mode,
		Verifier:         extract.NewVerifier(cfg.Webhook.Secrets, cfg.Webhook.TimestampTolerance, nil),
		MaxBodyBytes:     int64(cfg.Webhook.MaxBodyBytes),
		MaxInflightBytes: int64(cfg.Webhook.MaxInflightBytes),
		Store:            readyStore{buf, loader},
		Logger:           log.With("component", "receiver"),
		Registry:         reg,
	})

	srv := &http.Server{
		Handler:           rc,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		if sched != nil {
			sched.Stop(0)
		}
		buf.Close()
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "http"
	if cfg.Server.TLSCert != "" {
		scheme = "https"
	}
	log.Info("listening", "addr", ln.Addr().String(), "url", fmt.Sprintf("%s://%s%s", scheme, ln.Addr(), cfg.Webhook.Path),
		"signature_mode", mode, "secrets", len(cfg.Webhook.Secrets), "buffer", cfg.BufferDir())

	served := make(chan error, 1)
	go func() {
		if cfg.Server.TLSCert != "" {
			served <- srv.ServeTLS(ln, cfg.Server.TLSCert, cfg.Server.TLSKey)
		} else {
			served <- srv.Serve(ln)
		}
	}()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: no new connections, finishing in-flight requests")
	case err := <-served:
		runErr = fmt.Errorf("serve http: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("shut down http server", "err", err)
	}
	if sched != nil {
		sched.Stop(cfg.Server.ShutdownTimeout)
	}
	if err := buf.Close(); err != nil {
		return errors.Join(runErr, fmt.Errorf("close buffer: %w", err))
	}
	log.Info("stopped; active segment sealed")
	return runErr
}

// startSchedule runs loads on the configured schedule inside serve; nil when scheduling is off. Each run first
// seals the active segment, so a run loads everything received up to its start.
func startSchedule(cfg configs.Config, log *slog.Logger, reg prometheus.Registerer, buf *buffer.Buffer, getenv func(string) string) (*load.Scheduler, *load.Loader, error) {
	if cfg.Load.Schedule == "" {
		log.Info("scheduled loads are off (load.schedule is empty); run `sendpilot-loader load` to load")
		return nil, nil, nil
	}
	l, err := load.New(scheduledLoaderOptions(cfg, log, reg, buf, getenv))
	if err != nil {
		return nil, nil, fmt.Errorf("prepare loader: %w", err)
	}
	spec, _ := load.ParseSchedule(cfg.Load.Schedule)
	if n := load.RunsPerDay(spec, time.Now(), load.BigQueryDailyTableOperations); cfg.BigQuery.Project != "" && n > load.BigQueryDailyTableOperations {
		log.Warn("load schedule runs more often than BigQuery allows changes to a table per day (and replicas share that quota)",
			"schedule", cfg.Load.Schedule, "runs_per_day", fmt.Sprintf(">%d", load.BigQueryDailyTableOperations), "limit", load.BigQueryDailyTableOperations)
	}
	sched, err := load.NewScheduler(cfg.Load.Schedule, log, func(ctx context.Context) {
		rep, err := l.Run(ctx)
		switch {
		case errors.Is(err, load.ErrBusy):
			log.Info("load skipped: another load is running for this data directory")
		case err != nil:
			log.Error("scheduled load failed; segments stay pending", "err", err)
		default:
			for _, m := range rep.Batches {
				log.Info("scheduled load", "batch", m.ID, "step", m.Step, "events", m.Rows["events"], "new_events", m.Inserted["events"])
			}
		}
	})
	if err != nil {
		return nil, nil, err
	}
	log.Info("scheduled loads", "schedule", cfg.Load.Schedule, "warehouse", warehouseName(cfg))
	return sched, l, nil
}

// scheduledLoaderOptions are the settings of serve's own loads: the loader's, with a transform that leaves a
// core to the receiver. Deliveries keep being answered while a batch transforms, and the transform holds one
// worker's chunk and builders less. With the Go heap's share of memory_limit lowered while DuckDB loads
// (internal/memlimit) and the warehouse closed between batches, serve's peak RSS under the saturating
// pipeline bench fell from 360-411 MiB to 272-299 MiB on 2 cores (README, "Loads held within memory_limit").
func scheduledLoaderOptions(cfg configs.Config, log *slog.Logger, reg prometheus.Registerer, buf load.Buffer, getenv func(string) string) load.Options {
	opts := loaderOptions(cfg, log, reg, buf, getenv)
	opts.Transform.Workers = transform.WorkersLeavingCores(1)
	return opts
}

// readyStore is the buffer as the receiver stores into it, ready only while the buffer takes records and the
// scheduled loads (if any) are not paused: /readyz then says why loads stopped.
type readyStore struct {
	*buffer.Buffer
	loader *load.Loader
}

func (s readyStore) Ready() error {
	if err := s.Buffer.Ready(); err != nil {
		return err
	}
	if s.loader != nil {
		return s.loader.Ready()
	}
	return nil
}
