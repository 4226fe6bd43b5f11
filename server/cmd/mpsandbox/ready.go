package main

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// readyProbeEvery bounds how often /readyz writes to the store: a probe
// per request would let any caller make the server write.
const readyProbeEvery = 5 * time.Second

// writable is /readyz's view of the store: the outcome of a small real
// write (app.App.ProbeWrite), made again only when the last is older than
// readyProbeEvery, by one request while the others wait for it.
type writable struct {
	probe func(context.Context) error
	log   *slog.Logger

	mu  sync.Mutex
	at  time.Time
	err error
}

func (w *writable) check() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.at.IsZero() && time.Since(w.at) < readyProbeEvery {
		return w.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := w.probe(ctx)
	cancel()
	switch {
	case err != nil && w.err == nil:
		w.log.Error("store_not_writable", "error", err.Error())
	case err == nil && w.err != nil:
		w.log.Info("store_writable_again")
	}
	w.at, w.err = time.Now(), err
	return err
}
