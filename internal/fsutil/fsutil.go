// Package fsutil holds the file-system primitives that make the data directory crash-safe: durable renames,
// directory syncs, atomic replacement, fdatasync, free-space measurement and advisory locks. Every stage uses
// it; it depends on nothing else of the project.
//
// Invariant: a function here returns nil only once what it did survives a crash (power loss included), as far
// as the file system's fsync promises go.
package fsutil

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// TempSuffix marks a file being written atomically. A crash can leave one behind; the owner of its directory
// removes leftovers when it opens the directory.
const TempSuffix = ".tmp"

// SyncDir fsyncs a directory so that the entries created, renamed or removed in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir: %w", err)
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return d.Close()
}

// RenameDurable renames from to to and fsyncs the parent directory (both, when they differ), so the rename
// itself is durable.
func RenameDurable(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("rename file: %w", err)
	}
	if err := SyncDir(filepath.Dir(to)); err != nil {
		return err
	}
	if filepath.Dir(from) != filepath.Dir(to) {
		return SyncDir(filepath.Dir(from))
	}
	return nil
}

// WriteFileAtomic replaces path with data so that a crash leaves either the old or the new content, never a
// mix: it writes path+TempSuffix, fsyncs it, renames it over path and fsyncs the directory.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + TempSuffix
	if err := WriteSynced(tmp, perm, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return err
	}
	return RenameDurable(tmp, path)
}

// WriteSynced creates (or truncates) path, lets fill write its content, and fsyncs and closes it. On any
// failure the file is removed, so path holds either everything fill wrote, durably, or nothing. The directory
// entry itself is not synced: publish the file with RenameDurable or PublishNew, or sync the directory.
func WriteSynced(path string, perm os.FileMode, fill func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Base(path), err)
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// PublishNew moves the finished temporary file tmp to path only if path does not exist yet, and makes the
// result durable. It never replaces a file: an existing path is an error wrapping os.ErrExist, and tmp is
// left in place for the caller to remove.
func PublishNew(tmp, path string) error {
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("publish %s: %w", filepath.Base(path), err)
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("remove temp file: %w", err)
	}
	return SyncDir(filepath.Dir(path))
}
