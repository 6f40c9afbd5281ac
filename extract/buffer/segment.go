package buffer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// File name suffixes. A segment's name is its sequence number, zero-padded to SeqDigits, plus one of these.
const (
	// SealedSuffix marks an immutable segment, ready for the loader.
	SealedSuffix = ".ndjson"
	// ActiveSuffix marks the one segment being appended to. After a crash it is repaired and sealed on open.
	ActiveSuffix = ".ndjson.open"
	// BadSuffix marks a segment that could not be read or repaired; it is kept for a person to look at.
	BadSuffix = ".bad"
	// SeqDigits is the width of the zero-padded sequence number.
	SeqDigits = 10
	// sequenceFile remembers the last sequence number used, so numbers keep growing after the loader has
	// moved every segment out of the directory.
	sequenceFile = "last-sequence"
)

// Segment is one file of the log.
type Segment struct {
	Seq  uint64
	Path string
	Size int64
	// ModTime is when the segment was last written.
	ModTime time.Time
}

// SegmentName formats the file name of segment seq with the given suffix.
func SegmentName(seq uint64, suffix string) string {
	return fmt.Sprintf("%0*d%s", SeqDigits, seq, suffix)
}

// ParseSegmentName returns the sequence number and suffix of a segment file name; ok is false for any other
// file.
func ParseSegmentName(name string) (seq uint64, suffix string, ok bool) {
	if len(name) <= SeqDigits {
		return 0, "", false
	}
	n, err := strconv.ParseUint(name[:SeqDigits], 10, 64)
	if err != nil {
		return 0, "", false
	}
	suffix = name[SeqDigits:]
	switch {
	case suffix == SealedSuffix, suffix == ActiveSuffix, strings.HasSuffix(suffix, BadSuffix):
		return n, suffix, true
	}
	return 0, "", false
}

// Sealed lists the sealed segments of dir in sequence order. They are immutable; a loader may read them while
// the buffer is open, and remove them once their contents are committed elsewhere.
func Sealed(dir string) ([]Segment, error) {
	return list(dir, SealedSuffix)
}

func list(dir, suffix string) ([]Segment, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	var out []Segment
	for _, e := range entries {
		seq, suf, ok := ParseSegmentName(e.Name())
		if !ok || suf != suffix {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // removed by a loader while we listed
		}
		if err != nil {
			return nil, fmt.Errorf("stat segment: %w", err)
		}
		out = append(out, Segment{Seq: seq, Path: filepath.Join(dir, e.Name()), Size: info.Size(), ModTime: info.ModTime()})
	}
	slices.SortFunc(out, func(a, b Segment) int { return cmpUint(a.Seq, b.Seq) })
	return out, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
