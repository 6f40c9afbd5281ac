package transform

import (
	"math/bits"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// poolAllocator is an Arrow allocator that recycles buffers by power-of-two size class. Every chunk builds
// record batches of about the same size as the last, and releases them once written; reusing those buffers
// spares the heap from churning through fresh, zeroed pages for each chunk. Buffers are not zeroed on reuse:
// Arrow's builders initialise what they use.
type poolAllocator struct {
	classes [48]sync.Pool // class k holds buffers of capacity 1<<k
}

var _ memory.Allocator = (*poolAllocator)(nil)

const minClass = 6 // 64 bytes

func sizeClass(size int) int {
	if size <= 1<<minClass {
		return minClass
	}
	return bits.Len(uint(size - 1))
}

func (p *poolAllocator) Allocate(size int) []byte {
	k := sizeClass(size)
	if b, ok := p.classes[k].Get().(*[]byte); ok {
		return (*b)[:size]
	}
	return make([]byte, size, 1<<k)
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
	c := cap(b)
	if c < 1<<minClass || c&(c-1) != 0 {
		return // not one of ours; let the garbage collector have it
	}
	b = b[:c]
	p.classes[bits.Len(uint(c))-1].Put(&b)
}
