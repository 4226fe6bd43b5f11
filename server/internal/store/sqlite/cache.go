package sqlite

import (
	"slices"
	"sync"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// recordCacheSize bounds the records kept in memory: enough for the
// records being worked on at once (a jump reads a trade prepared moments
// before), few enough to stay within the memory target. A record is a few
// hundred bytes of JSON; records larger than recordCacheMaxData are not
// kept at all.
const (
	recordCacheSize    = 1024
	recordCacheMaxData = 16 << 10
)

// recordCache keeps recently written and read records in memory, so that
// the hot path (a jump reads its trade by alias, the resolution reads it
// again by key) does not pay a SQLite read for each: in WAL mode every read
// transaction after a commit starts with an empty page cache, so each
// point read costs several pread calls.
//
// It is coherent because this process is the database's only writer: the
// writer marks the records a transaction writes as committing just before
// its COMMIT — from then on the cache misses for them and refuses to be
// filled with them — and, once committed, puts their new versions and
// clears the mark. So whoever learns of a commit, from the writer or from
// another object of the same batch read in the file, reads the new
// versions. A reader fills a miss with what it read only if nothing newer
// got there first (versions only grow) and no entry was evicted while it
// read — an eviction could have dropped a newer version the reader's older
// row would otherwise replace.
type recordCache struct {
	mu        sync.Mutex
	byKey     map[cacheKey]*sandbox.Record
	byAlias   map[aliasKey]cacheKey
	evictions uint64
	// committing holds the records of a transaction being committed, from
	// just before its COMMIT until the cache has their new versions: the
	// file may already show them to a reader, so the cache must not answer
	// for them, nor be filled with them, until then.
	committing map[cacheKey]int
}

type cacheKey struct{ kind, mchid, key string }

type aliasKey struct{ kind, mchid, alias string }

func newRecordCache() *recordCache {
	return &recordCache{byKey: map[cacheKey]*sandbox.Record{}, byAlias: map[aliasKey]cacheKey{}, committing: map[cacheKey]int{}}
}

// get returns a copy of the cached record.
func (c *recordCache) get(kind, mchid, key string) (*sandbox.Record, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lookupLocked(cacheKey{kind, mchid, key}), c.evictions
}

// find returns a copy of the cached record of the merchant that owns the
// alias.
func (c *recordCache) find(kind, mchid, alias string) (*sandbox.Record, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.byAlias[aliasKey{kind, mchid, alias}]
	if !ok {
		return nil, c.evictions
	}
	return c.lookupLocked(k), c.evictions
}

// lookupLocked returns a copy of the cached record, or nil when there is
// none or it is being committed.
func (c *recordCache) lookupLocked(k cacheKey) *sandbox.Record {
	if c.committing[k] > 0 {
		return nil
	}
	return cloneRecord(c.byKey[k])
}

// fill caches what a reader read, unless an entry was evicted since the
// reader looked (evictions is what get or find returned) or the cache
// already holds this version or a newer one.
func (c *recordCache) fill(r *sandbox.Record, evictions uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := cacheKey{r.Kind, r.MchID, r.Key}
	if c.evictions != evictions || c.committing[k] > 0 {
		return
	}
	if have := c.byKey[k]; have != nil && have.Version >= r.Version {
		return
	}
	c.putLocked(r)
}

// committing marks the records a transaction wrote, just before its COMMIT.
func (c *recordCache) commit(rs []*sandbox.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rs {
		c.committing[cacheKey{r.Kind, r.MchID, r.Key}]++
	}
}

// committed ends commit's mark once the COMMIT returned, caching the new
// versions if it succeeded (newest by definition: there is one writer).
func (c *recordCache) committed(rs []*sandbox.Record, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range rs {
		k := cacheKey{r.Kind, r.MchID, r.Key}
		if c.committing[k]--; c.committing[k] <= 0 {
			delete(c.committing, k)
		}
		if ok {
			c.putLocked(r)
		}
	}
}

func (c *recordCache) putLocked(r *sandbox.Record) {
	k := cacheKey{r.Kind, r.MchID, r.Key}
	if len(r.Data) > recordCacheMaxData {
		if c.byKey[k] != nil {
			c.dropLocked(k)
		}
		return
	}
	if c.byKey[k] == nil && len(c.byKey) >= recordCacheSize {
		// Drop an eighth, in map order (arbitrary): cheaper than an LRU
		// list on every hit, and the hot records come back at their next
		// write or read.
		n := recordCacheSize / 8
		for old := range c.byKey {
			c.dropLocked(old)
			if n--; n == 0 {
				break
			}
		}
	}
	c.byKey[k] = cloneRecord(r)
	for _, a := range r.Aliases {
		c.byAlias[aliasKey{r.Kind, r.MchID, a}] = k
	}
}

func (c *recordCache) dropLocked(k cacheKey) {
	r := c.byKey[k]
	delete(c.byKey, k)
	for _, a := range r.Aliases {
		if c.byAlias[aliasKey{k.kind, k.mchid, a}] == k {
			delete(c.byAlias, aliasKey{k.kind, k.mchid, a})
		}
	}
	c.evictions++
}

// cloneRecord copies r deeply enough that neither the cache nor its callers
// see the other's changes.
func cloneRecord(r *sandbox.Record) *sandbox.Record {
	if r == nil {
		return nil
	}
	c := *r
	c.Aliases = slices.Clone(r.Aliases)
	c.Data = slices.Clone(r.Data)
	return &c
}
