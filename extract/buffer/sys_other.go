//go:build !linux

package buffer

import (
	"math"
	"os"
)

// osFile is a segment on disk; Sync is a full fsync on systems without fdatasync.
type osFile struct{ *os.File }

// freeSpace is not measured on this system; the quota (buffer.max_bytes) still applies.
func freeSpace(string) (int64, error) { return math.MaxInt64, nil }
