package load

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sendpilot-loader/internal/fsutil"
)

// Step is how far a batch got. Steps only move forward.
type Step string

// The steps of a batch, in order.
const (
	StepPlanned     Step = "planned"
	StepTransformed Step = "transformed"
	StepLoaded      Step = "loaded"
	StepArchived    Step = "archived"
	// StepRejected ends a batch the warehouse refused; its segments are kept under rejected/.
	StepRejected Step = "rejected"
)

// Manifest is the on-disk record of one batch, in state/batches/<id>/manifest.json. It is replaced atomically
// (temp file, fsync, rename, fsync dir) at every step.
type Manifest struct {
	ID        string    `json:"id"`
	Step      Step      `json:"step"`
	Segments  []string  `json:"segments"` // file names in buffer/, in sequence order
	Bytes     int64     `json:"bytes"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Filled by the transform step.
	Rows            map[string]int64 `json:"rows,omitempty"`
	Quarantined     int64            `json:"quarantined,omitempty"`
	HasOccurred     bool             `json:"has_occurred,omitempty"`
	MinOccurred     time.Time        `json:"min_occurred,omitzero"`
	MaxOccurred     time.Time        `json:"max_occurred,omitzero"`
	HasNullOccurred bool             `json:"has_null_occurred,omitempty"`
	// Filled by the load step.
	Inserted map[string]int64 `json:"inserted,omitempty"`
	// BytesRead is the load's LoadResult.BytesRead: per table, the bytes the warehouse's merge read (-1: its
	// statistics did not say). Absent for warehouses that cannot tell and in manifests older than the field.
	BytesRead map[string]int64 `json:"bytes_read,omitempty"`
	// Refused counts events the warehouse refused on their own (found by isolating them); they are kept, with
	// the warehouse's error, in RefusedFile, and the rest of the batch loaded.
	Refused     int    `json:"refused,omitempty"`
	RefusedFile string `json:"refused_file,omitempty"`
	// Attempts counts load attempts that failed; Error is the last failure.
	Attempts int    `json:"attempts,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Done reports whether the batch needs no more work.
func (m *Manifest) Done() bool { return m.Step == StepArchived || m.Step == StepRejected }

// layout names the directories of a data dir that the loader owns.
type layout struct {
	state, batches, quarantine, rejected string
}

func newLayout(dataDir string) layout {
	state := filepath.Join(dataDir, "state")
	return layout{
		state:      state,
		batches:    filepath.Join(state, "batches"),
		quarantine: filepath.Join(dataDir, "quarantine"),
		rejected:   filepath.Join(dataDir, "rejected"),
	}
}

func (l layout) batchDir(id string) string { return filepath.Join(l.batches, id) }

func (l layout) manifestPath(id string) string {
	return filepath.Join(l.batchDir(id), "manifest.json")
}

// save writes m atomically.
func (l layout) save(m *Manifest, now time.Time) error {
	m.UpdatedAt = now.UTC()
	if err := os.MkdirAll(l.batchDir(m.ID), 0o755); err != nil {
		return fmt.Errorf("create batch dir: %w", err)
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := fsutil.WriteFileAtomic(l.manifestPath(m.ID), append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("save manifest %s: %w", m.ID, err)
	}
	return nil
}

// manifests reads every batch manifest, oldest first (batch IDs sort by their first segment).
func (l layout) manifests() ([]*Manifest, error) {
	entries, err := os.ReadDir(l.batches)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	var out []*Manifest
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		raw, err := os.ReadFile(l.manifestPath(e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // a crash before the first manifest was saved: nothing was done for it
		}
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		var m Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("parse manifest %s: %w", e.Name(), err)
		}
		out = append(out, &m)
	}
	slices.SortFunc(out, func(a, b *Manifest) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
