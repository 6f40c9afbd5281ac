package fsutil

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Fdatasync flushes f's data and size to the disk, but not necessarily its modification time, which is
// cheaper than a full fsync. It retries on EINTR.
func Fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

// FreeSpace returns the bytes available to an unprivileged user on the file system holding dir.
func FreeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
