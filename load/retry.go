package load

import (
	"context"
	"time"
)

// Retry calls try until it succeeds, at most attempts times, waiting backoff after the first failure and twice
// as long after each next one. It stops early when final says a failure cannot be cured by trying again, or
// when ctx ends, and returns try's last error. try learns which attempt it is (1 is the first).
func Retry(ctx context.Context, attempts int, backoff time.Duration, try func(attempt int) error, final func(error) bool) error {
	wait := backoff
	for attempt := 1; ; attempt++ {
		err := try(attempt)
		if err == nil || (final != nil && final(err)) || attempt >= attempts || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
}
