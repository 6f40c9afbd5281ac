package buffer

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// File names. A segment's name is its stem plus a suffix. The stem of a format-v2 segment is its sequence
// number, zero-padded to seqDigits, a dash and a random stamp of stampDigits hex digits drawn when the
// segment is created ("0000000042-9f86d081"); a format-v1 segment's stem is the number alone. The stamp makes
// a name unique forever: sequence numbers order segments, but after a lost last-sequence file or a data dir
// restored from a backup they can repeat, and a name must never (batch IDs and archive names derive from it).
const (
	// sealedSuffix marks an immutable segment, ready for the loader.
	sealedSuffix = ".ndjson"
	// activeSuffix marks the one segment being appended to. After a crash it is repaired and sealed on open.
	activeSuffix = ".ndjson.open"
	// badSuffix marks a file that could not be read or repaired; it is kept for a person to look at.
	badSuffix = ".bad"
	// tailSuffix names the copy of whatever followed the valid records of a repaired active segment.
	tailSuffix = ".tail" + badSuffix
	// archiveSuffix is added to a segment's name in the archive (gzip).
	archiveSuffix = ".gz"
	seqDigits     = 10
	stampDigits   = 8
	// sequenceFile remembers the last sequence number used, so numbers keep growing after the loader has
	// moved every segment out of the directory.
	sequenceFile = "last-sequence"
	// lockFile is held by the one writer of the directory for its whole life.
	lockFile = "writer.lock"
)

// segName is a parsed file name of the buffer or archive directory.
type segName struct {
	seq    uint64
	stem   string // seq, or seq-stamp
	suffix string
	v2     bool // a stamped (format v2) name: every line carries a checksum
}

// newStem returns the stem of a new segment with sequence number seq.
func newStem(seq uint64) (string, error) {
	var b [stampDigits / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("draw segment stamp: %w", err)
	}
	return fmt.Sprintf("%0*d-%s", seqDigits, seq, hex.EncodeToString(b[:])), nil
}

// parseName takes a file name apart; ok is false for any file that is not a segment, an archived segment or
// a bad file derived from one.
func parseName(name string) (segName, bool) {
	if len(name) <= seqDigits {
		return segName{}, false
	}
	n, err := strconv.ParseUint(name[:seqDigits], 10, 64)
	if err != nil {
		return segName{}, false
	}
	s := segName{seq: n, stem: name[:seqDigits]}
	rest := name[seqDigits:]
	if len(rest) > stampDigits && rest[0] == '-' && isHex(rest[1:1+stampDigits]) {
		s.stem, s.v2 = name[:seqDigits+1+stampDigits], true
		rest = rest[1+stampDigits:]
	}
	s.suffix = rest
	switch {
	case rest == sealedSuffix, rest == activeSuffix, rest == sealedSuffix+archiveSuffix, strings.HasSuffix(rest, badSuffix):
		return s, true
	}
	return segName{}, false
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// segment is one file of the log.
type segment struct {
	segName
	path    string
	size    int64
	modTime time.Time
}

// list returns the files of dir with the given suffix, in sequence order (then by name).
func list(dir, suffix string) ([]segment, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	var out []segment
	for _, e := range entries {
		n, ok := parseName(e.Name())
		if !ok || n.suffix != suffix {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // retired while we listed
		}
		if err != nil {
			return nil, fmt.Errorf("stat segment: %w", err)
		}
		out = append(out, segment{segName: n, path: filepath.Join(dir, e.Name()), size: info.Size(), modTime: info.ModTime()})
	}
	slices.SortFunc(out, func(a, b segment) int {
		return cmp.Or(cmp.Compare(a.seq, b.seq), strings.Compare(a.stem, b.stem))
	})
	return out, nil
}

// maxSeq returns the highest sequence number named by any file of dir (0 when none).
func maxSeq(dir string) (uint64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", dir, err)
	}
	var m uint64
	for _, e := range entries {
		if n, ok := parseName(e.Name()); ok {
			m = max(m, n.seq)
		}
	}
	return m, nil
}
