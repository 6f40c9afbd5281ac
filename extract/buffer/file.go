package buffer

import (
	"os"

	"sendpilot-loader/internal/fsutil"
)

// osFile is a segment on disk. Sync uses fdatasync: the data and the file size reach the disk, the
// modification time need not.
type osFile struct{ *os.File }

func (f osFile) Sync() error { return fsutil.Fdatasync(f.File) }
