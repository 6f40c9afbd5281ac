package buffer

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// osFile is a segment on disk. Sync uses fdatasync: the data and the file size reach the disk, the
// modification time need not.
type osFile struct{ *os.File }

func (f osFile) Sync() error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

// freeSpace returns the bytes available to an unprivileged user on the file system holding dir.
func freeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
