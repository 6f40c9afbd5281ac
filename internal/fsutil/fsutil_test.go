package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestTryLockIsExclusiveAndNamesTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	first, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = TryLock(path) // a second open file description: flock conflicts even inside one process
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second TryLock = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("error %q does not name the holder", err)
	}
	first.Unlock()
	first.Unlock() // twice is fine
	again, err := TryLock(path)
	if err != nil {
		t.Fatalf("TryLock after Unlock = %v", err)
	}
	again.Unlock()
}

func TestPublishNewNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.gz")
	for i, content := range []string{"first", "second"} {
		tmp := path + TempSuffix
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		err := PublishNew(tmp, path)
		if i == 0 && err != nil {
			t.Fatalf("first publish: %v", err)
		}
		if i == 1 && !errors.Is(err, os.ErrExist) {
			t.Fatalf("second publish = %v, want ErrExist", err)
		}
	}
	if got, _ := os.ReadFile(path); string(got) != "first" {
		t.Fatalf("published file holds %q, want the first content", got)
	}
}

func TestWriteFileAtomicReplacesWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.json")
	for _, want := range []string{"one", "two"} {
		if err := WriteFileAtomic(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if _, err := os.Stat(path + TempSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file left behind: %v", err)
	}
}
