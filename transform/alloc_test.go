package transform

import (
	"runtime"
	"testing"
)

func TestSizeClasses(t *testing.T) {
	prevClass, prevCap := -1, 0
	for size := 1; size < 1<<22; size += 1 + size/97 {
		k, c := sizeClass(size)
		if c < size || (size > 64 && float64(c) > 1.26*float64(size)) {
			t.Fatalf("size %d: class capacity %d", size, c)
		}
		if k < prevClass || (k == prevClass && c != prevCap) {
			t.Fatalf("size %d: class %d/%d after %d/%d", size, k, c, prevClass, prevCap)
		}
		if k2, c2 := sizeClass(c); k2 != k || c2 != c {
			t.Fatalf("capacity %d maps to %d/%d, not its own class %d", c, k2, c2, k)
		}
		prevClass, prevCap = k, c
	}
	p := new(poolAllocator)
	b := p.Allocate(1000)
	p.Free(b)
	if got := p.Allocate(900); cap(got) != cap(b) {
		t.Fatalf("buffer not reused: cap %d, want %d", cap(got), cap(b))
	}
	p.Free(make([]byte, 10, 1000)) // foreign buffers are ignored
}

// TestPoolAllocatorBound checks that freed buffers are reused whatever the collector does, and that the free
// lists never hold more than maxHeld bytes.
func TestPoolAllocatorBound(t *testing.T) {
	p := new(poolAllocator)
	b := p.Allocate(4096)
	p.Free(b)
	runtime.GC()
	runtime.GC() // a sync.Pool would be empty now
	if got := p.Allocate(4000); &got[:1][0] != &b[:1][0] {
		t.Fatal("a freed buffer was not reused after a collection")
	}
	const size = 1 << 20
	for range 2 * maxHeld / size {
		p.Free(make([]byte, size))
	}
	if p.held > maxHeld || p.held < maxHeld-size {
		t.Fatalf("free lists hold %d bytes, want at most %d and close to it", p.held, maxHeld)
	}
	for range 2 * maxHeld / size {
		p.Allocate(size)
	}
	if p.held != 0 {
		t.Fatalf("free lists hold %d bytes after every buffer was taken back", p.held)
	}
}
