package buffer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"sendpilot-loader/internal/fsutil"
	"sendpilot-loader/internal/record"
)

// recoverDir brings dir to a clean state after a stop of any kind and returns the highest sequence number in
// use. The caller holds the writer lock. The rule, also written in docs/buffer-format.md:
//
//   - leftover *.tmp files are removed;
//   - an active segment (*.ndjson.open) is scanned line by line; the longest prefix of complete, valid
//     records (format v2: the checksum matches; v1: the line is JSON) is kept and the segment is sealed (an
//     empty one is removed). Of what follows that prefix, trailing zero bytes (preallocated space) are cut;
//     anything else is first copied to <stem>.tail.bad, so nothing that might have been acknowledged is lost:
//     kept + moved aside + zeros cut is the whole file;
//   - an active segment that cannot be read is renamed to *.ndjson.open.bad, never deleted;
//   - sealed segments are immutable and are not touched.
//
// Every rename and removal is followed by an fsync of dir.
func recoverDir(dir string, log *slog.Logger) (maxSeq uint64, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("read buffer dir: %w", err)
	}
	if err := sweepTemp(dir, log); err != nil {
		return 0, err
	}
	changed := false
	for _, e := range entries {
		n, ok := parseName(e.Name())
		if !ok {
			continue
		}
		maxSeq = max(maxSeq, n.seq)
		if n.suffix != activeSuffix {
			continue
		}
		if err := repairActive(dir, n, log); err != nil {
			return 0, err
		}
		changed = true
	}
	if last, err := readSequence(dir); err != nil {
		return 0, err
	} else {
		maxSeq = max(maxSeq, last)
	}
	if changed {
		if err := fsutil.SyncDir(dir); err != nil {
			return 0, err
		}
	}
	return maxSeq, nil
}

// sweepTemp removes the temporary files a crash left in dir (a missing dir has none).
func sweepTemp(dir string, log *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	removed := false
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), fsutil.TempSuffix) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		log.Warn("removing leftover temp file", "file", path)
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove temp file: %w", err)
		}
		removed = true
	}
	if removed {
		return fsutil.SyncDir(dir)
	}
	return nil
}

// repairActive applies the recovery rule to one active segment.
func repairActive(dir string, n segName, log *slog.Logger) error {
	path := filepath.Join(dir, n.stem+activeSuffix)
	scan, scanErr := scanSegment(path, n.v2)
	if scanErr != nil {
		bad := path + badSuffix
		log.Error("active segment cannot be read; moved aside", "segment", path, "moved_to", bad, "err", scanErr)
		if err := os.Rename(path, bad); err != nil {
			return fmt.Errorf("move aside unreadable segment: %w", err)
		}
		return nil
	}
	if scan.aside > scan.good {
		aside := filepath.Join(dir, n.stem+tailSuffix)
		if err := copyRange(path, scan.good, scan.aside, aside); err != nil {
			return err
		}
		msg := "cutting torn tail of active segment; kept aside"
		if scan.linesAfter {
			msg = "active segment has complete lines after a bad one; tail kept aside"
		}
		log.Warn(msg, "segment", path, "offset", scan.good, "bytes", scan.aside-scan.good, "tail", aside)
	}
	if scan.size > scan.good {
		if scan.size > scan.aside {
			log.Info("cutting preallocated space of active segment", "segment", path, "offset", scan.aside, "bytes", scan.size-scan.aside)
		}
		if err := truncateSync(path, scan.good); err != nil {
			return err
		}
	}
	if scan.good == 0 {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove empty segment: %w", err)
		}
		return nil
	}
	if err := os.Rename(path, filepath.Join(dir, n.stem+sealedSuffix)); err != nil {
		return fmt.Errorf("seal recovered segment: %w", err)
	}
	log.Info("recovered active segment", "segment", path, "bytes", scan.good)
	return nil
}

// segmentScan is what scanSegment found: [0, good) are valid records, [good, aside) must be kept aside and
// [aside, size) are zero bytes.
type segmentScan struct {
	good, aside, size int64
	// linesAfter is true when complete lines follow the first bad one (more than a torn write).
	linesAfter bool
}

// scanSegment reads the segment at path and splits it by the recovery rule; v2 says whether its lines must
// carry a checksum.
func scanSegment(path string, v2 bool) (segmentScan, error) {
	f, err := os.Open(path)
	if err != nil {
		return segmentScan{}, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	return scanRecords(f, v2)
}

func scanRecords(in io.Reader, v2 bool) (segmentScan, error) {
	r := bufio.NewReaderSize(in, 1<<20)
	var s segmentScan
	var off int64
	broken := false
	for {
		line, rerr := r.ReadSlice('\n')
		if errors.Is(rerr, bufio.ErrBufferFull) {
			// A line longer than the reader's buffer: gather it whole.
			head := append([]byte(nil), line...) // ReadBytes reuses the reader's buffer
			rest, err2 := r.ReadBytes('\n')
			line, rerr = append(head, rest...), err2
		}
		if len(line) > 0 {
			complete := line[len(line)-1] == '\n'
			if !broken && complete && validRecord(line[:len(line)-1], v2) {
				s.good = off + int64(len(line))
			} else {
				if broken && complete && len(bytes.Trim(line, "\x00\n")) > 0 {
					s.linesAfter = true
				}
				broken = true
			}
			off += int64(len(line))
			// The aside part ends after the last byte that is not zero.
			if i := lastNonZero(line); i >= 0 && broken {
				s.aside = off - int64(len(line)) + int64(i) + 1
			}
		}
		if errors.Is(rerr, io.EOF) {
			s.size = off
			s.aside = max(s.aside, s.good)
			return s, nil
		}
		if rerr != nil {
			return segmentScan{}, fmt.Errorf("read segment at offset %d: %w", off, rerr)
		}
	}
}

func lastNonZero(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0 {
			return i
		}
	}
	return -1
}

// validRecord reports whether line (without its newline) is a record the buffer could have written: in a
// format-v2 segment a framed record whose checksum matches, in a v1 segment any JSON document. It may
// overwrite line.
func validRecord(line []byte, v2 bool) bool {
	if len(line) == 0 {
		return false
	}
	rec, st := record.Open(line)
	switch st {
	case record.Intact:
		return true
	case record.Unframed:
		return !v2 && json.Valid(rec)
	}
	return false
}

// copyRange copies bytes [from, to) of path to a new file dst and fsyncs it.
func copyRange(path string, from, to int64, dst string) error {
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	defer src.Close()
	return fsutil.WriteSynced(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, io.NewSectionReader(src, from, to-from))
		return err
	})
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("truncate segment: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync segment: %w", err)
	}
	return nil
}

func readSequence(dir string) (uint64, error) {
	raw, err := os.ReadFile(filepath.Join(dir, sequenceFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read sequence file: %w", err)
	}
	var n uint64
	if _, err := fmt.Sscan(string(raw), &n); err != nil {
		return 0, fmt.Errorf("parse sequence file: %w", err)
	}
	return n, nil
}
