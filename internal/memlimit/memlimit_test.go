package memlimit

import (
	"math"
	"runtime/debug"
	"testing"
)

// setLimit sets the soft limit for a test and restores the one before it.
func setLimit(t *testing.T, n int64) {
	t.Helper()
	before := debug.SetMemoryLimit(n)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
}

func current() int64 { return debug.SetMemoryLimit(-1) }

func TestHoldLowersTheLimitUntilReleased(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name   string
		budget int64
		holds  []int64
		want   int64 // while every hold is held
	}{
		{"one hold", 160 * mib, []int64{64 * mib}, 96 * mib},
		{"holds add up", 160 * mib, []int64{32 * mib, 16 * mib}, 112 * mib},
		{"never below half the budget", 100 * mib, []int64{80 * mib}, 50 * mib},
		{"nothing held", 160 * mib, []int64{0, -5}, 160 * mib},
		{"no limit", math.MaxInt64, []int64{64 * mib}, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setLimit(t, tt.budget)
			var releases []func()
			for _, n := range tt.holds {
				releases = append(releases, Hold(n))
			}
			if got := current(); got != tt.want {
				t.Errorf("limit while held = %d, want %d", got, tt.want)
			}
			for _, release := range releases {
				release()
				release() // idempotent
			}
			if got := current(); got != tt.budget {
				t.Errorf("limit after release = %d, want the budget %d", got, tt.budget)
			}
		})
	}
}

// Releasing one of two holds gives back its bytes only.
func TestReleaseGivesBackItsOwnBytes(t *testing.T) {
	const mib = 1 << 20
	setLimit(t, 200*mib)
	a := Hold(40 * mib)
	b := Hold(20 * mib)
	a()
	if got, want := current(), int64(180*mib); got != want {
		t.Errorf("limit with one hold left = %d, want %d", got, want)
	}
	b()
	if got, want := current(), int64(200*mib); got != want {
		t.Errorf("limit after both = %d, want %d", got, want)
	}
}

// A limit set while something is held (GOMEMLIMIT changed by a test, say) becomes the budget that holds are
// taken from and that their release restores.
func TestLimitSetWhileHeldBecomesTheBudget(t *testing.T) {
	const mib = 1 << 20
	setLimit(t, math.MaxInt64)
	release := Hold(64 * mib) // no limit: nothing to lower
	debug.SetMemoryLimit(256 * mib)
	other := Hold(32 * mib)
	if got, want := current(), int64((256-64-32)*mib); got != want {
		t.Errorf("limit = %d, want the new budget less both holds, %d", got, want)
	}
	other()
	release()
	if got, want := current(), int64(256*mib); got != want {
		t.Errorf("limit after release = %d, want %d", got, want)
	}
}
