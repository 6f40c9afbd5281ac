package transform

import "testing"

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
