package fsutil

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrLocked means another process (or another holder in this one) holds the lock.
var ErrLocked = errors.New("locked by another process")

// Lock is an exclusive advisory lock on a file (flock). The kernel drops it when the process dies, so a
// crash never leaves a stale lock behind.
type Lock struct {
	f *os.File
}

// TryLock takes an exclusive lock on path without waiting, creating the file if needed. It returns an error
// wrapping ErrLocked, which names the holder's process ID when known, if the lock is held. While held, the
// file records the holder's process ID, for the messages of those who find it locked.
func TryLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			if pid := holder(path); pid > 0 {
				return nil, fmt.Errorf("%w (pid %d holds %s)", ErrLocked, pid, path)
			}
			return nil, fmt.Errorf("%w (%s)", ErrLocked, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The process ID is informative only: the flock is the lock.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

func holder(path string) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	return pid
}

// Unlock releases the lock. It is safe to call more than once.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
	l.f = nil
}
