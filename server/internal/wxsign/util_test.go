package wxsign

import (
	"strings"
	"testing"
)

func TestNonceStr(t *testing.T) {
	for _, n := range []int{0, 1, 12, 32, 1000} {
		got := NonceStr(n)
		if len(got) != n {
			t.Errorf("NonceStr(%d) has length %d", n, len(got))
		}
		if i := strings.IndexFunc(got, func(r rune) bool { return !strings.ContainsRune(alphanumeric, r) }); i >= 0 {
			t.Errorf("NonceStr(%d) = %q has %q, not alphanumeric", n, got, got[i])
		}
	}
	if got := NonceStr(-1); got != "" {
		t.Errorf("NonceStr(-1) = %q, want empty", got)
	}
	seen := map[string]bool{}
	for range 1000 {
		s := NonceStr(16)
		if seen[s] {
			t.Fatalf("NonceStr(16) repeated %q within 1000 draws", s)
		}
		seen[s] = true
	}
	// Every character of the alphabet turns up in 62k draws; a biased or
	// truncated mapping would miss some.
	all := NonceStr(62000)
	for _, c := range alphanumeric {
		if !strings.ContainsRune(all, c) {
			t.Errorf("NonceStr never produced %q", c)
		}
	}
}

func TestMask(t *testing.T) {
	tests := []struct {
		name, s, secret, want string
	}{
		{"every occurrence", "a=K1&key=K1", "K1", "a=***&key=***"},
		{"empty secret leaves s", "a=1&key=", "", "a=1&key="},
		{"absent secret", "a=1", "zz", "a=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Mask(tt.s, tt.secret); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSpoil(t *testing.T) {
	for in, want := range map[string]string{"9A0A": "9A00", "9A00": "9A01", "abc=": "abc0", "": "0"} {
		if got := Spoil(in); got != want {
			t.Errorf("Spoil(%q) = %q, want %q", in, got, want)
		}
	}
}
