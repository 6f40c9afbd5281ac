//go:build !linux

package fsutil

import (
	"math"
	"os"
)

// Fdatasync is a full fsync on systems without fdatasync.
func Fdatasync(f *os.File) error { return f.Sync() }

// FreeSpace is not measured on this system; quotas still apply.
func FreeSpace(string) (int64, error) { return math.MaxInt64, nil }
