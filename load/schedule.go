package load

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"
)

// scheduleParser accepts five cron fields (minute hour day-of-month month day-of-week) and descriptors such
// as "@every 1m" and "@hourly".
var scheduleParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule checks a schedule spec.
func ParseSchedule(spec string) (cron.Schedule, error) {
	s, err := scheduleParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("parse schedule %q: %w", spec, err)
	}
	return s, nil
}

// BigQueryDailyTableOperations is BigQuery's daily limit of operations that change one table (load jobs, DML
// such as MERGE, copies). Each batch changes each final table once, with its MERGE (its load and dedup jobs
// write tables of their own), so one replica may run at most this many batches a day; N replicas share it.
const BigQueryDailyTableOperations = 1500

// RunsPerDay counts the activations of a schedule in the 24 hours after from, stopping past limit.
func RunsPerDay(s cron.Schedule, from time.Time, limit int) int {
	n := 0
	end := from.Add(24 * time.Hour)
	for t := s.Next(from); !t.After(end) && n <= limit; t = s.Next(t) {
		n++
	}
	return n
}

// Scheduler runs a loader on a cron schedule. A run never overlaps the previous one: a tick that comes while
// a run is still going is skipped.
type Scheduler struct {
	c      *cron.Cron
	cancel context.CancelFunc
}

// NewScheduler starts calling run on the schedule until Stop.
func NewScheduler(spec string, log *slog.Logger, run func(ctx context.Context)) (*Scheduler, error) {
	if _, err := ParseSchedule(spec); err != nil {
		return nil, err
	}
	// Verbose, so a skipped tick ("skip") shows at debug level; errors and recovered panics show at any level.
	logger := cron.VerbosePrintfLogger(slog.NewLogLogger(log.Handler(), slog.LevelDebug))
	c := cron.New(cron.WithParser(scheduleParser), cron.WithChain(cron.Recover(logger), cron.SkipIfStillRunning(logger)))
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := c.AddFunc(spec, func() { run(ctx) }); err != nil {
		cancel()
		return nil, fmt.Errorf("schedule load: %w", err)
	}
	c.Start()
	return &Scheduler{c: c, cancel: cancel}, nil
}

// Stop stops scheduling, lets a running load finish for up to grace, then cancels it and waits for it to
// return (a cancelled load leaves its batch at its last recorded step).
func (s *Scheduler) Stop(grace time.Duration) {
	done := s.c.Stop().Done()
	select {
	case <-done:
	case <-time.After(grace):
		s.cancel()
		<-done
	}
	s.cancel()
}
