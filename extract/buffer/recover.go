package buffer

import (
	"sendpilot-loader/internal/fsutil"

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
)

// recoverDir brings dir to a clean state after a stop of any kind and returns the highest sequence number in
// use. The rule, also written in docs/buffer-format.md:
//
//   - leftover *.tmp files are removed;
//   - an active segment (*.ndjson.open) is scanned line by line; the longest prefix of complete lines that
//     each hold valid JSON is kept and the segment is sealed (an empty one is removed). Whatever follows that
//     prefix was never acknowledged if it is a single torn line or zero bytes, and is cut with a warning;
//     anything else after it (complete lines, which might have been acknowledged) is first copied to
//     <seq>.ndjson.tail.bad so that nothing is lost;
//   - an active segment that cannot be read is renamed to *.ndjson.open.bad, never deleted;
//   - sealed segments are immutable and are not touched.
//
// Every rename and removal is followed by an fsync of dir.
func recoverDir(dir string, log *slog.Logger) (maxSeq uint64, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("read buffer dir: %w", err)
	}
	changed := false
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		if strings.HasSuffix(name, fsutil.TempSuffix) {
			log.Warn("removing leftover temp file", "file", path)
			if err := os.Remove(path); err != nil {
				return 0, fmt.Errorf("remove temp file: %w", err)
			}
			changed = true
			continue
		}
		seq, suffix, ok := ParseSegmentName(name)
		if !ok {
			continue
		}
		maxSeq = max(maxSeq, seq)
		if suffix != ActiveSuffix {
			continue
		}
		if err := repairActive(dir, seq, log); err != nil {
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

// repairActive applies the recovery rule to one active segment.
func repairActive(dir string, seq uint64, log *slog.Logger) error {
	path := filepath.Join(dir, SegmentName(seq, ActiveSuffix))
	good, size, tail, scanErr := scanValidPrefix(path)
	if scanErr != nil {
		bad := path + BadSuffix
		log.Error("active segment cannot be read; moved aside", "segment", path, "moved_to", bad, "err", scanErr)
		if err := os.Rename(path, bad); err != nil {
			return fmt.Errorf("move aside unreadable segment: %w", err)
		}
		return nil
	}
	if good < size {
		switch tail {
		case tailLines:
			aside := filepath.Join(dir, SegmentName(seq, ".tail"+BadSuffix))
			if err := copyTail(path, good, aside); err != nil {
				return err
			}
			log.Error("active segment has complete lines after a corrupt one; tail kept aside",
				"segment", path, "offset", good, "bytes", size-good, "tail", aside)
		case tailZeros:
			log.Info("cutting preallocated space of active segment", "segment", path, "offset", good, "bytes", size-good)
		default:
			log.Warn("cutting torn tail of active segment", "segment", path, "offset", good, "bytes", size-good)
		}
		if err := truncateSync(path, good); err != nil {
			return err
		}
	}
	if good == 0 {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove empty segment: %w", err)
		}
		return nil
	}
	if err := os.Rename(path, filepath.Join(dir, SegmentName(seq, SealedSuffix))); err != nil {
		return fmt.Errorf("seal recovered segment: %w", err)
	}
	log.Info("recovered active segment", "segment", path, "bytes", good)
	return nil
}

// What follows the valid prefix of an active segment.
const (
	tailZeros = iota // only zero bytes: preallocated space, or nothing at all
	tailTorn         // a torn write: no complete line after the first bad one
	tailLines        // complete lines after a bad one: more than a torn write
)

// scanValidPrefix returns the length of the longest prefix of path made of complete, valid JSON lines, the
// file's size, and what follows that prefix.
func scanValidPrefix(path string) (good, size int64, tail int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var off int64
	broken := false
	tail = tailZeros
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
			switch {
			case !broken && complete && validRecord(line[:len(line)-1]):
				good = off + int64(len(line))
			default:
				broken = true
				if trimmed := bytes.Trim(line, "\x00\n"); len(trimmed) > 0 {
					tail = max(tail, tailTorn)
					if complete && good < off {
						tail = tailLines
					}
				}
			}
			off += int64(len(line))
		}
		if errors.Is(rerr, io.EOF) {
			return good, off, tail, nil
		}
		if rerr != nil {
			return 0, 0, 0, fmt.Errorf("read segment at offset %d: %w", off, rerr)
		}
	}
}

// validRecord reports whether line (without its newline) is a record the buffer could have written.
func validRecord(line []byte) bool {
	return len(line) > 0 && json.Valid(line)
}

func copyTail(path string, from int64, to string) error {
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	defer src.Close()
	if _, err := src.Seek(from, io.SeekStart); err != nil {
		return fmt.Errorf("seek segment: %w", err)
	}
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create tail file: %w", err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("copy tail: %w", err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return fmt.Errorf("sync tail: %w", err)
	}
	return dst.Close()
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
