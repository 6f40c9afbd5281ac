package load_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"sendpilot-loader/load"
)

func TestRetry(t *testing.T) {
	fail, fatal := errors.New("transient"), errors.New("final")
	for _, tc := range []struct {
		name     string
		failures []error // what attempts 1, 2, … return; nil after the list
		attempts int
		want     error
		tries    int
	}{
		{"first try", nil, 3, nil, 1},
		{"third try", []error{fail, fail}, 3, nil, 3},
		{"out of attempts", []error{fail, fail, fail}, 3, fail, 3},
		{"final error stops", []error{fail, fatal, fail}, 5, fatal, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tries := 0
			err := load.Retry(context.Background(), tc.attempts, time.Millisecond, func(attempt int) error {
				tries++
				if attempt != tries {
					t.Errorf("attempt %d on try %d", attempt, tries)
				}
				if attempt <= len(tc.failures) {
					return tc.failures[attempt-1]
				}
				return nil
			}, func(err error) bool { return errors.Is(err, fatal) })
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) || tries != tc.tries {
				t.Errorf("err %v after %d tries, want %v after %d", err, tries, tc.want, tc.tries)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	tries := 0
	err := load.Retry(ctx, 10, time.Hour, func(int) error { tries++; cancel(); return fail }, nil)
	if !errors.Is(err, fail) || tries != 1 {
		t.Errorf("cancelled: err %v after %d tries, want the last error after 1", err, tries)
	}
}
