package transform

import (
	"math/bits"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// poolAllocator is an Arrow allocator that recycles buffers by size class. Every chunk builds record batches
// of about the same size as the last, and releases them once written; reusing those buffers spares the heap
// from churning through fresh, zeroed pages for each chunk. Buffers are not zeroed on reuse: Arrow's builders
// initialise what they use. Size classes are quarter steps between powers of two, so a buffer wastes at most
// a fifth of its capacity.
type poolAllocator struct {
	classes [64*4 + 5]sync.Pool
}

var _ memory.Allocator = (*poolAllocator)(nil)

const minClassBits = 6 // 64 bytes

// sizeClass returns the class of a size and the capacity of that class.
func sizeClass(size int) (class, capacity int) {
	if size <= 1<<minClassBits {
		return 0, 1 << minClassBits
	}
	e := bits.Len(uint(size-1)) - 1 // 2^e < size <= 2^(e+1)
	step := 1 << (e - 2)            // a quarter of 2^e
	q := (size - (1 << e) + step - 1) / step
	return e*4 + q, 1<<e + q*step
}

func (p *poolAllocator) Allocate(size int) []byte {
	k, c := sizeClass(size)
	if b, ok := p.classes[k].Get().(*[]byte); ok {
		return (*b)[:size]
	}
	return make([]byte, size, c)
}

func (p *poolAllocator) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		return b[:size]
	}
	nb := p.Allocate(size)
	copy(nb, b)
	p.Free(b)
	return nb
}

func (p *poolAllocator) Free(b []byte) {
	k, c := sizeClass(cap(b))
	if c != cap(b) {
		return // not one of ours; let the garbage collector have it
	}
	b = b[:c]
	p.classes[k].Put(&b)
}
