package transform

import (
	"reflect"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestParsersReplacedAfterBudget checks that a flattener drops its parsers' kept values once it has parsed
// parserReset bytes, and keeps them before.
func TestParsersReplacedAfterBudget(t *testing.T) {
	f := newFlattener(memory.NewGoAllocator())
	defer f.release()
	line := []byte(`{"eventId":"e1","eventType":"message.sent","data":{"leads":[{"id":"a"},{"id":"b"}]}}`)
	used := func() bool { return !reflect.ValueOf(f.parser).IsZero() }
	if _, err := f.parse(&f.parser, line); err != nil {
		t.Fatal(err)
	}
	f.resetParsers(parserReset / 2)
	if !used() {
		t.Fatal("parser replaced before parsing parserReset bytes")
	}
	f.resetParsers(parserReset / 2)
	if !used() {
		t.Fatal("parser replaced at exactly parserReset bytes")
	}
	f.resetParsers(1)
	if used() {
		t.Fatal("parser kept after parsing more than parserReset bytes")
	}
	if f.parsed != 1 {
		t.Fatalf("parsed count %d after a reset, want the chunk's 1 byte", f.parsed)
	}
}
