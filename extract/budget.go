package extract

import "sync/atomic"

// budget bounds the bytes of line buffers that requests in flight hold, all together.
type budget struct {
	limit int64 // 0: no limit
	used  atomic.Int64
}

// reservation is one request's share of a budget. It is used by one goroutine.
type reservation struct {
	b    *budget
	held int64
}

func (b *budget) reserve() reservation { return reservation{b: b} }

// grow reserves n more bytes and reports true, or reserves nothing and reports false when that would take the
// budget past its limit.
func (r *reservation) grow(n int64) bool {
	for {
		used := r.b.used.Load()
		if r.b.limit > 0 && used+n > r.b.limit {
			return false
		}
		if r.b.used.CompareAndSwap(used, used+n) {
			r.held += n
			return true
		}
	}
}

// force reserves n more bytes even past the limit: for memory that is already allocated.
func (r *reservation) force(n int64) {
	r.b.used.Add(n)
	r.held += n
}

// shrink gives back n of the bytes held.
func (r *reservation) shrink(n int64) {
	r.b.used.Add(-n)
	r.held -= n
}

// release gives back everything held.
func (r *reservation) release() { r.shrink(r.held) }
