package sandbox_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/store/sqlite"
)

type counter struct {
	N int `json:"n"`
}

// TestUpdateLosesNoChange races increments of one record through Update on
// a real store: every increment that Update acknowledges is in the record,
// and one that gave up says so with CodeConflict.
func TestUpdateLosesNoChange(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "u.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, err := sandbox.NewRecord("test.counter", "m1", "c", counter{}, "alias-c")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(ctx, &sandbox.Batch{Creates: []*sandbox.Record{rec}}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 25
	var mu sync.Mutex
	acknowledged := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				_, err := sandbox.Update(ctx, st, "test.counter", "m1", "c", func(c *counter, _ *sandbox.Batch) error {
					c.N++
					return nil
				})
				switch {
				case err == nil:
					mu.Lock()
					acknowledged++
					mu.Unlock()
				case !sandbox.IsCode(err, sandbox.CodeConflict):
					t.Errorf("Update: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	got, err := sandbox.Find[counter](ctx, st, "test.counter", "m1", "alias-c")
	if err != nil {
		t.Fatal(err)
	}
	if got.V.N != acknowledged || acknowledged == 0 {
		t.Fatalf("the counter is %d after %d acknowledged increments", got.V.N, acknowledged)
	}
}
