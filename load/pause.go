package load

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// pauseFile, in state/, records that loads are paused and why. It outlives the process, so status (another
// process) and a restarted serve see the pause too.
const pauseFile = "paused.json"

// Pause says why loads are paused: the warehouse answered with an error no batch can get past (ErrSystemic).
// Nothing is moved while paused; every run tries again and the pause ends by itself once a load succeeds.
type Pause struct {
	Since time.Time `json:"since"`
	// Batch is the batch that met the error; Error is the warehouse's message, which says what to fix.
	Batch string `json:"batch,omitempty"`
	Error string `json:"error"`
}

// Err is the pause as an error, for readiness checks.
func (p *Pause) Err() error {
	return fmt.Errorf("loads paused since %s: %s", p.Since.Format(time.RFC3339), p.Error)
}

// Paused returns the current pause, or nil while loads run. It is safe to call from any goroutine.
func (l *Loader) Paused() *Pause { return l.pause.Load() }

// Ready returns an error while loads are paused, for /readyz.
func (l *Loader) Ready() error {
	if p := l.Paused(); p != nil {
		return p.Err()
	}
	return nil
}

// setPaused records a pause (keeping the first time it started).
func (l *Loader) setPaused(batch string, cause error) {
	p := &Pause{Since: l.opts.Now().UTC(), Batch: batch, Error: cause.Error()}
	if old := l.pause.Load(); old != nil {
		p.Since = old.Since
	} else {
		l.log.Error("LOADS PAUSED: the warehouse cannot load until this is fixed; nothing is moved, segments stay pending, every run tries again",
			"batch", batch, "err", cause)
	}
	l.pause.Store(p)
	l.m.paused.Set(1)
	l.m.batches.WithLabelValues("paused").Inc()
	if err := saveJSON(filepath.Join(l.dirs.state, pauseFile), p); err != nil {
		l.log.Error("record pause", "err", err)
	}
}

// clearPaused ends a pause after a successful load.
func (l *Loader) clearPaused() {
	if l.pause.Swap(nil) == nil {
		return
	}
	l.m.paused.Set(0)
	l.log.Info("loads resumed")
	if err := os.Remove(filepath.Join(l.dirs.state, pauseFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		l.log.Error("clear pause", "err", err)
	}
}

// readPause reads the recorded pause of a data directory; nil when loads are not paused.
func readPause(stateDir string) (*Pause, error) {
	raw, err := os.ReadFile(filepath.Join(stateDir, pauseFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pause: %w", err)
	}
	var p Pause
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("parse pause: %w", err)
	}
	return &p, nil
}
