package miniprogram

import (
	"regexp"
	"sort"
	"testing"
	"time"
)

// TestSessionIDsGrowWithTime: ids sort in the order they were made (to the
// millisecond), keep the ses_ + 24 hex shape, and differ within one
// millisecond.
func TestSessionIDsGrowWithTime(t *testing.T) {
	shape := regexp.MustCompile(`^ses_[0-9a-f]{24}$`)
	at := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 100 {
		id := newSessionID(at.Add(time.Duration(i) * time.Millisecond))
		if !shape.MatchString(id) {
			t.Fatalf("got %q, want ses_ and 24 hex digits", id)
		}
		ids = append(ids, id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatalf("ids made later do not sort later: %v", ids)
	}
	if a, b := newSessionID(at), newSessionID(at); a == b {
		t.Fatalf("two ids of one millisecond are equal: %s", a)
	}
}
