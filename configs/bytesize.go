package configs

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Byte-size units, powers of two.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
)

// ByteSize is a number of bytes that reads and prints as "64MiB"; a plain integer is a count of bytes.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	size   ByteSize
}{
	{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	{"B", 1},
}

// ParseByteSize reads "512", "64MiB", "1.5GiB" or "10GB" (case-insensitive units, optional space). Negative
// sizes, NaN, infinities and sizes of 2^63 bytes or more are errors.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("parse byte size %q: empty", s)
	}
	for _, u := range byteUnits {
		if len(t) > len(u.suffix) && strings.EqualFold(t[len(t)-len(u.suffix):], u.suffix) {
			num := strings.TrimSpace(t[:len(t)-len(u.suffix)])
			f, err := strconv.ParseFloat(num, 64)
			// NaN fails every comparison, so only !(f >= 0) refuses it; 2^63 is the first size that overflows.
			if err != nil || !(f >= 0) || f*float64(u.size) >= math.MaxInt64 {
				return 0, fmt.Errorf("parse byte size %q: want a non-negative number below 8EiB", s)
			}
			return ByteSize(f * float64(u.size)), nil
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("parse byte size %q: want a byte count or a number with a unit such as 64MiB", s)
	}
	return ByteSize(n), nil
}

// String prints the size with the largest binary unit that divides it exactly.
func (b ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		size   ByteSize
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if b != 0 && b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// Set implements flag.Value.
func (b *ByteSize) Set(s string) error {
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// UnmarshalYAML accepts an integer or a string with a unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("decode byte size: %w", err)
	}
	return b.Set(s)
}

// MarshalYAML prints the size with its unit.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }
