package journal

import (
	"context"
	"time"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// DefaultTailPoll is how often a shared journal's tail reads the store when
// nothing woke it: the fallback for an announcement that did not arrive.
const DefaultTailPoll = time.Second

// A journal over a store that other processes share (Options.Shared) feeds
// its subscribers from the store instead of from its own writes: the tail
// reads the entries after the last id it published, in id order, so that
// a live stream on any replica shows every replica's entries in the
// store's order and ids. The PostgreSQL store commits appends in id order
// (an advisory lock), so paging by id never skips an entry committed
// late. The tail is woken by this process's appends, by other processes'
// (their store announcements, Committed) and, as a fallback, every
// TailPoll.

// Committed is the store's after-commit hook: another process appended to
// the journal up to c.Journal.
func (j *Journal) Committed(c sandbox.Committed) {
	if c.Journal > 0 && j.o.Shared {
		j.wakeTail(c.Journal)
	}
}

// wakeTail tells the tail that the store holds entries up to id.
func (j *Journal) wakeTail(id int64) {
	for {
		old := j.heard.Load()
		if id <= old || j.heard.CompareAndSwap(old, id) {
			break
		}
	}
	select {
	case j.tailKick <- struct{}{}:
	default:
	}
}

// runTail publishes the store's new entries to the subscribers until ctx
// ends or the journal stops. With no subscriber it reads no entries: it
// moves its mark to the newest id it heard of (at a poll, the store's
// newest), so that a stream subscribing later is not sent history.
func (j *Journal) runTail(ctx context.Context) {
	tick := time.NewTicker(j.o.TailPoll)
	defer tick.Stop()
	last, err := j.newest(ctx)
	known := err == nil
	if known {
		j.markTail()
	}
	for {
		polled := false
		select {
		case <-j.tailKick:
		case <-tick.C:
			polled = true
		case <-ctx.Done():
			return
		case <-j.stopping:
			return
		}
		subscribed := j.hasSubscribers()
		if !known || (polled && !subscribed) {
			newest, err := j.newest(ctx)
			if err != nil {
				continue
			}
			if !known || !j.hasSubscribers() {
				last, known = max(last, newest), true
				j.markTail()
			}
		}
		// What was heard before a check that finds no subscriber was
		// committed before any later subscriber came: skip it.
		if heard := j.heard.Load(); !j.hasSubscribers() {
			last = max(last, heard)
			continue
		}
		if last, err = j.tailFrom(ctx, last); err != nil && ctx.Err() == nil {
			j.log.Warn("journal_tail_failed", "error", err.Error())
		}
	}
}

// tailFrom publishes the entries after last, a page at a time, and returns
// the last id it published.
func (j *Journal) tailFrom(ctx context.Context, last int64) (int64, error) {
	for {
		xs, err := j.st.QueryJournal(ctx, sandbox.JournalFilter{AfterID: last, Oldest: true, Limit: j.o.BatchSize, MaxBytes: replayPageBytes})
		if err != nil || len(xs) == 0 {
			return last, err
		}
		j.publish(xs)
		last = xs[len(xs)-1].ID
		// A short page is the end, unless the byte bound cut it short of
		// an id the tail was told of.
		if len(xs) < j.o.BatchSize && last >= j.heard.Load() {
			return last, nil
		}
	}
}

// newest is the id of the store's newest entry, 0 when it has none.
func (j *Journal) newest(ctx context.Context) (int64, error) {
	xs, err := j.st.QueryJournal(ctx, sandbox.JournalFilter{Limit: 1})
	if err != nil || len(xs) == 0 {
		return 0, err
	}
	return xs[0].ID, nil
}

func (j *Journal) hasSubscribers() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.subs) > 0
}

// tailStartWait bounds how long a new subscriber of a shared journal waits
// for the tail to learn where the store ends (its first read, at start).
const tailStartWait = 5 * time.Second

// markTail says the tail knows where the store ends: subscribers from
// then on miss nothing. Before it, a subscriber waits (awaitTail), since
// the tail would take the store's end when it first reads as its start
// and skip what was appended after the subscriber came.
func (j *Journal) markTail() { j.tailOnce.Do(func() { close(j.tailMarked) }) }

// awaitTail waits, within tailStartWait, for a shared journal's tail to
// know where the store ends.
func (j *Journal) awaitTail() {
	if !j.o.Shared {
		return
	}
	t := time.NewTimer(tailStartWait)
	defer t.Stop()
	select {
	case <-j.tailMarked:
	case <-j.stopping:
	case <-t.C:
	}
}
