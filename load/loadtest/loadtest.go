// Package loadtest helps warehouse tests: it turns event lines into a load.Batch through the real transform.
package loadtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sendpilot-loader/load"
	"sendpilot-loader/transform"
)

// BatchFrom writes lines as an NDJSON file, transforms it into a temporary directory and returns the batch
// a loader would hand the warehouse, occurred_at range included.
func BatchFrom(t testing.TB, id string, lines ...string) load.Batch {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.ndjson")
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := transform.Files(context.Background(), []string{in}, filepath.Join(dir, "out"), transform.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return load.NewBatch(id, res)
}
