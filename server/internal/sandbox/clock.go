package sandbox

import (
	"sync"
	"time"
)

// Clock is the sandbox's time. Each merchant has its own: real time since the
// process started, multiplied by a scale, plus the merchant's manual advances.
// Every expiry, timeline and retry schedule reads it, never time.Now.
type Clock struct {
	mu      sync.RWMutex
	real    func() time.Time
	start   time.Time
	scale   float64
	offsets map[string]time.Duration
	wake    []func()
}

// NewClock returns a clock running at scale (1 = real time) whose real time
// comes from real (time.Now when nil).
func NewClock(scale float64, real func() time.Time) *Clock {
	if real == nil {
		real = time.Now
	}
	if scale <= 0 {
		scale = 1
	}
	return &Clock{real: real, start: real(), scale: scale, offsets: map[string]time.Duration{}}
}

// StartAt makes the clock's scaled time run from start instead of the
// moment NewClock was called: processes sharing a store (replicas) start
// their clocks at one shared instant, so that at a scale other than 1
// they all tell the same sandbox time. Call it before the clock is read.
func (c *Clock) StartAt(start time.Time) {
	c.mu.Lock()
	c.start = start
	c.mu.Unlock()
}

// Scale is how many sandbox seconds pass per real second.
func (c *Clock) Scale() float64 { return c.scale }

// Now returns the merchant's sandbox time.
func (c *Clock) Now(mchid string) time.Time {
	c.mu.RLock()
	off, start := c.offsets[mchid], c.start
	c.mu.RUnlock()
	now := c.real()
	if c.scale == 1 {
		return now.Add(off)
	}
	elapsed := time.Duration(float64(now.Sub(start)) * c.scale)
	return start.Add(elapsed).Add(off)
}

// Offset returns the merchant's total manual advance.
func (c *Clock) Offset(mchid string) time.Duration {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.offsets[mchid]
}

// SetOffset sets the merchant's total manual advance, as the store holds
// it, and wakes every listener when it moved.
func (c *Clock) SetOffset(mchid string, d time.Duration) {
	c.mu.Lock()
	moved := c.offsets[mchid] != d
	c.offsets[mchid] = d
	wake := c.wake
	c.mu.Unlock()
	if moved {
		for _, f := range wake {
			f()
		}
	}
}

// Advance moves the merchant's clock forward by d and wakes every listener
// (the notification worker, session waiters), returning the new offset.
func (c *Clock) Advance(mchid string, d time.Duration) time.Duration {
	c.mu.Lock()
	c.offsets[mchid] += d
	off := c.offsets[mchid]
	wake := append([]func(){}, c.wake...)
	c.mu.Unlock()
	for _, f := range wake {
		f()
	}
	return off
}

// OnAdvance registers f to run after every Advance.
func (c *Clock) OnAdvance(f func()) {
	c.mu.Lock()
	c.wake = append(c.wake, f)
	c.mu.Unlock()
}

// RealDuration converts a sandbox duration into the real time it takes at
// the clock's scale (for timers).
func (c *Clock) RealDuration(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.scale)
}
