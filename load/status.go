package load

import (
	"os"
	"strings"
	"time"

	"sendpilot-loader/extract/buffer"
	"sendpilot-loader/extract/envelope"
)

// Status is what an operator wants to know about a data directory.
type Status struct {
	PendingSegments int
	PendingBytes    int64
	// OldestPending is the receive time of the first record of the oldest sealed segment.
	OldestPending time.Time
	// ActiveSegment is true while serve holds an open segment.
	ActiveSegment bool
	// BadFiles counts *.bad files waiting for a person.
	BadFiles int
	// LastBatch is the most recently updated batch; Unfinished counts batches a load will resume.
	LastBatch  *Manifest
	Unfinished int
}

// ReadStatus reads the state of a data directory without taking the load lock.
func ReadStatus(dataDir string) (Status, error) {
	var st Status
	l := newLayout(dataDir)
	segs, err := buffer.Sealed(l.buffer)
	if err != nil {
		return st, err
	}
	st.PendingSegments = len(segs)
	for _, s := range segs {
		st.PendingBytes += s.Size
	}
	if len(segs) > 0 {
		st.OldestPending = buffer.FirstRecordTime(segs[0], envelope.ReceivedAt)
	}
	entries, _ := os.ReadDir(l.buffer)
	for _, e := range entries {
		switch {
		case strings.HasSuffix(e.Name(), buffer.ActiveSuffix):
			st.ActiveSegment = true
		case strings.HasSuffix(e.Name(), buffer.BadSuffix):
			st.BadFiles++
		}
	}
	ms, err := l.manifests()
	if err != nil {
		return st, err
	}
	for _, m := range ms {
		if !m.Done() {
			st.Unfinished++
		}
		if st.LastBatch == nil || m.UpdatedAt.After(st.LastBatch.UpdatedAt) {
			st.LastBatch = m
		}
	}
	return st, nil
}
