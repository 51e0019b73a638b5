package allocator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// DefaultMaxConflicts bounds the optimistic-concurrency retries of one
// write. Many pods starting at once on a node all write that node's block;
// each retry costs a read and a write, so the bound is generous.
const DefaultMaxConflicts = 64

// errContended: a block lost too many races in a row; try another.
var errContended = errors.New("block contended")

// retry runs attempt until it returns anything but a write conflict
// (ErrConflict): the optimistic-concurrency loop of every write the
// allocator makes. attempt reads what it writes afresh each time. After
// each conflict retry backs off a short, jittered, growing time; it gives
// up with errContended after patience conflicts in a row when patience > 0
// (the caller has somewhere else to go), and with ErrBusy after
// MaxConflicts. what names the object written, in the error of a retry
// that gives up; it is called only then, so the common path (a write that
// succeeds first time, on every ADD) formats nothing.
func (a *Allocator) retry(ctx context.Context, what func() string, patience int, attempt func() error) error {
	for try := 0; ; try++ {
		err := attempt()
		if !errors.Is(err, ErrConflict) {
			return err
		}
		if patience > 0 && try+1 >= patience {
			return errContended
		}
		if err := a.backoff(ctx, try); err != nil {
			return fmt.Errorf("%s: %w", what(), err)
		}
	}
}

func (a *Allocator) maxConflicts() int {
	if a.MaxConflicts > 0 {
		return a.MaxConflicts
	}
	return DefaultMaxConflicts
}

// backoff sleeps after the try-th conflict in a row, or fails with ErrBusy
// when the retries are used up.
func (a *Allocator) backoff(ctx context.Context, try int) error {
	if try+1 >= a.maxConflicts() {
		return fmt.Errorf("%w: %d write conflicts in a row", ErrBusy, try+1)
	}
	d := time.Duration(min(try+1, 20)) * time.Millisecond
	d = d/2 + time.Duration(rand.Int64N(int64(d)))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
