// Package memlimit shares the process's memory budget between the Go heap and memory the Go runtime does not
// see (DuckDB's buffer manager, allocated in C). The budget is the Go runtime's soft memory limit
// (debug.SetMemoryLimit, set from memory_limit or GOMEMLIMIT). While memory outside Go is held, the soft limit
// is lowered by that much, so the collector keeps the heap smaller and the two together stay near the budget.
//
// Invariants:
//   - With nothing held, the soft limit is the one set before the first hold, exactly.
//   - While held, the soft limit is the budget less everything held, but never below half the budget: a
//     hold larger than the budget leaves the heap room to work rather than a collector that never stops.
//   - With no limit set (math.MaxInt64, Go's default) holds change nothing.
//
// Only this package changes the soft limit after start-up.
package memlimit

import (
	"math"
	"runtime/debug"
	"sync"
)

var (
	mu      sync.Mutex
	held    int64 // bytes held outside Go, by all holds
	lowered int64 // how far the soft limit is below the budget now
)

// Hold lowers the Go heap's soft limit by n bytes until release is called; release is idempotent. Holds add
// up; n <= 0 holds nothing.
func Hold(n int64) (release func()) {
	if n <= 0 {
		return func() {}
	}
	mu.Lock()
	defer mu.Unlock()
	held += n
	apply()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			held -= n
			apply()
		})
	}
}

// apply sets the soft limit for what is held now; mu is held. The budget is the limit now plus what the holds
// took off it, so a limit set by someone else while nothing was taken off (a test, or no limit at the first
// hold) becomes the budget.
func apply() {
	budget := debug.SetMemoryLimit(-1) + lowered
	if budget == math.MaxInt64 {
		lowered = 0
		return
	}
	limit := max(budget-held, budget/2)
	debug.SetMemoryLimit(limit)
	lowered = budget - limit
}
