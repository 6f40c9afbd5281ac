package load

import (
	"fmt"
	"strings"
)

// SchemaDifference is the error a Warehouse returns from Ensure or Load when its tables differ from the schema
// this release writes in a way that cannot be migrated safely: a column whose type changed, a column the
// release no longer has, a NOT NULL the warehouse lacks, or a schema version newer than the release knows.
// It wraps ErrSystemic: loads pause and nothing is moved until an operator resolves the difference, and the
// next load after that goes on by itself. docs/upgrading.md quotes this message; keep the two in step.
type SchemaDifference struct {
	// Warehouse is the warehouse's Name.
	Warehouse string
	// Problems say, one each, what differs and what to run.
	Problems []string
}

func (e *SchemaDifference) Error() string {
	return fmt.Sprintf("schema of %s differs from this release's in a way that cannot be migrated safely: %s. Loads are paused and every segment stays in buffer/; once the difference is resolved the next load goes on (docs/upgrading.md)",
		e.Warehouse, strings.Join(e.Problems, "; "))
}

// NewerSchema is the difference of a warehouse whose holder (its "file" or "dataset") records a schema
// version newer than the newest this release knows: a newer release migrated it, and this one must not write.
func NewerSchema(warehouse, holder string, recorded, known int) *SchemaDifference {
	return &SchemaDifference{Warehouse: warehouse, Problems: []string{fmt.Sprintf(
		"the %s holds schema version %d and this release knows versions up to %d: run the release that migrated it, or a newer one", holder, recorded, known)}}
}

// Unwrap makes the error match ErrSystemic.
func (e *SchemaDifference) Unwrap() error { return ErrSystemic }
