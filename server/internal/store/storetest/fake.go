package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/brianvoe/gofakeit/v6"
)

// FakeSeedEnv names the variable that replays a round trip: the test logs
// its seed, and with the variable set to it the same data is generated
// again (go test -run 'TestContract/RoundTrip' -v).
const FakeSeedEnv = "MPSANDBOX_FAKE_SEED"

// newFaker returns a gofakeit faker seeded from FakeSeedEnv or, without it,
// from the clock, and logs the seed.
func newFaker(t *testing.T) faker {
	t.Helper()
	seed := time.Now().UnixNano()
	if v := os.Getenv(FakeSeedEnv); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", FakeSeedEnv, v, err)
		}
		seed = n
	}
	if seed == 0 {
		seed = 1 // gofakeit.New(0) seeds itself from crypto/rand: not replayable
	}
	t.Logf("gofakeit seed %d (replay: %s=%d)", seed, FakeSeedEnv, seed)
	return faker{gofakeit.New(seed), map[string]bool{}}
}

// faker draws the text of the round trip. Everything comes from the one
// seeded source, in a fixed order, so that a seed gives the same data.
type faker struct {
	*gofakeit.Faker
	used map[string]bool // what unique has handed out
}

// Character classes gofakeit's Regex draws from: Chinese (CJK unified
// ideographs) and what JSON, SQL text and PostgreSQL array literals treat
// specially — quotes, backslashes, braces and commas, HTML's <>&, control
// characters, U+2028 and U+2029 (JSON allows them raw, JavaScript did not
// before ES2019), a byte order mark, a zero-width joiner, U+FFFD.
const (
	chineseClass = `[\x{4e00}-\x{9fa5}]`
	awkwardClass = `["'\\/{},<>&\t\n\r\x{1}\x{1b}\x{7f}\x{85}\x{a0}\x{2028}\x{2029}\x{feff}\x{200d}\x{fffd}]`
)

// awkwardWords are whole strings some code paths treat specially.
var awkwardWords = []string{"NULL", "null", "true", "0", "-0", "1e999", `\u0000`, `\"`, "' OR '1'='1", "{}", `{"a":1}`, " ", "~1/0"}

// piece is a short run of text of one kind: sentences, hacker phrases,
// emoji, quotations, Chinese, awkward characters or words, names, URLs.
func (f faker) piece() string {
	switch f.Number(0, 10) {
	case 0:
		return f.Sentence(f.Number(1, 12))
	case 1:
		return f.HackerPhrase()
	case 2:
		return f.Emoji()
	case 3:
		return f.Quote()
	case 4:
		return f.Regex(chineseClass + `{1,10}`)
	case 5:
		return f.Regex(awkwardClass + `{1,6}`)
	case 6:
		return f.RandomString(awkwardWords)
	case 7:
		return f.Question()
	case 8:
		return f.Name() + " <" + f.Email() + ">"
	case 9:
		return f.URL() + "?q=" + f.Word() + "&x=" + f.Emoji()
	default:
		return f.Phrase()
	}
}

// text is free text of at least min bytes, pieces joined by a space or by
// nothing.
func (f faker) text(min int) string {
	var b strings.Builder
	for b.Len() < min || b.Len() == 0 {
		if b.Len() > 0 && f.Bool() {
			b.WriteByte(' ')
		}
		b.WriteString(f.piece())
	}
	return b.String()
}

// body is text for a field that holds documents: short most of the time,
// one time in five up to 4 KB, sometimes with a NUL character.
func (f faker) body() string {
	n := f.Number(0, 200)
	if f.Number(0, 4) == 0 {
		n = f.Number(1<<10, 4<<10)
	}
	s := f.text(n)
	if f.Number(0, 9) == 0 {
		s += "\x00" + f.piece()
	}
	return s
}

// unique is short text (a key, an alias, an id: at most 200 bytes, without
// NUL, which PostgreSQL's text refuses) not handed out before.
func (f faker) unique() string {
	for {
		s := f.text(0)
		if len(s) > 200 {
			s = s[:200]
			for !utf8.ValidString(s) {
				s = s[:len(s)-1]
			}
		}
		if s != "" && !f.used[s] {
			f.used[s] = true
			return s
		}
	}
}

// value is a JSON value: text, a number (integers beyond float64's 2^53,
// decimals with trailing zeros, exponents), a boolean, null, or — depth
// allowing — an object or an array.
func (f faker) value(depth int) any {
	switch n := f.Number(0, 9); {
	case n <= 2:
		return f.body()
	case n == 3:
		return json.Number(strconv.FormatInt(f.Int64()-f.Int64(), 10))
	case n == 4:
		return json.Number(f.RandomString([]string{
			strconv.FormatFloat(f.Price(0, 10000), 'f', 2, 64), strconv.FormatFloat(f.Float64(), 'e', -1, 64), "-0.0", "1E+2",
		}))
	case n == 5:
		return f.Bool()
	case n == 6:
		return nil
	case depth <= 0:
		return f.piece()
	case n == 7:
		a := make([]any, f.Number(0, 4))
		for i := range a {
			a[i] = f.value(depth - 1)
		}
		return a
	default:
		return f.object(depth - 1)
	}
}

// object is a JSON object of one to five members with text names.
func (f faker) object(depth int) map[string]any {
	m := map[string]any{}
	for range f.Number(1, 5) {
		m[f.text(0)] = f.value(depth)
	}
	return m
}

// document encodes an object in one of the forms JSON allows: as
// encoding/json writes it (HTML characters and U+2028 escaped), with every
// character that may stay raw kept raw, or in ASCII (\uXXXX, surrogate
// pairs for emoji); members in a shuffled order, sometimes indented.
func (f faker) document(t *testing.T) json.RawMessage {
	t.Helper()
	v := f.object(2)
	var b bytes.Buffer
	switch f.Number(0, 2) {
	case 0:
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(raw)
	default:
		f.encode(&b, v, f.Bool())
	}
	if f.Number(0, 3) == 0 {
		var ind bytes.Buffer
		if err := json.Indent(&ind, b.Bytes(), "", "\t"); err != nil {
			t.Fatalf("generated JSON is invalid: %v", err)
		}
		b = ind
	}
	if !json.Valid(b.Bytes()) {
		t.Fatalf("generated JSON is invalid: %q", b.Bytes())
	}
	return b.Bytes()
}

// encode writes v as JSON, escaping only what JSON requires (quotes,
// backslashes, control characters) or, with ascii, every character past
// ASCII too.
func (f faker) encode(b *bytes.Buffer, v any, ascii bool) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys) // from a fixed order, so that the seed decides the shuffle
		f.ShuffleStrings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k, ascii)
			b.WriteByte(':')
			f.encode(b, v[k], ascii)
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			f.encode(b, x, ascii)
		}
		b.WriteByte(']')
	case string:
		writeString(b, v, ascii)
	case json.Number:
		b.WriteString(string(v))
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case nil:
		b.WriteString("null")
	default:
		panic(fmt.Sprintf("encode: %T", v))
	}
}

func writeString(b *bytes.Buffer, s string, ascii bool) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(b, `\u%04x`, r)
		case ascii && r > 0x7e && r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(b, `\u%04x\u%04X`, r1, r2) // hex digits in either case
		case ascii && r > 0x7e:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// firstDiff says where the JSON forms of want and got first differ, ""
// when they mean the same: a json.RawMessage field compares by what it
// means (members in any order, escapes decoded, numbers by value), every
// string exactly.
func firstDiff(want, got any) string {
	w, err := jsonTree(want)
	if err != nil {
		return "want: " + err.Error()
	}
	g, err := jsonTree(got)
	if err != nil {
		return "got: " + err.Error()
	}
	return walkDiff("", w, g)
}

func jsonTree(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var tree any
	err = d.Decode(&tree)
	return tree, err
}

var pointerEscape = strings.NewReplacer("~", "~0", "/", "~1")

func walkDiff(path string, want, got any) string {
	if empty(want) && empty(got) {
		return "" // an absent list is an empty one, as omitempty has it
	}
	at := func(format string, args ...any) string {
		return fmt.Sprintf("at %s: ", clip(path, 80)) + fmt.Sprintf(format, args...)
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return at("got %s, want an object", clip(fmt.Sprint(got), 60))
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				return at("member %s missing", clip(k, 60))
			}
			if d := walkDiff(path+"/"+pointerEscape.Replace(k), w[k], gv); d != "" {
				return d
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				return at("unexpected member %s", clip(k, 60))
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return at("got %s, want an array of %d", clip(fmt.Sprint(got), 60), len(w))
		}
		for i := range w {
			if d := walkDiff(path+"/"+strconv.Itoa(i), w[i], g[i]); d != "" {
				return d
			}
		}
	case string:
		g, ok := got.(string)
		if !ok {
			return at("got %s, want a string", clip(fmt.Sprint(got), 60))
		}
		if g != w {
			i := 0
			for i < len(w) && i < len(g) && w[i] == g[i] {
				i++
			}
			from := max(0, i-20)
			return at("got %d bytes, want %d; they part at byte %d: got …%s, want …%s",
				len(g), len(w), i, clip(g[from:], 40), clip(w[from:], 40))
		}
	case json.Number:
		g, ok := got.(json.Number)
		wr, wok := new(big.Rat).SetString(string(w))
		if !ok || !wok {
			return at("got %v, want the number %s", got, w)
		}
		if gr, gok := new(big.Rat).SetString(string(g)); !gok || gr.Cmp(wr) != 0 {
			return at("got %s, want %s", g, w)
		}
	default: // bool, nil
		if got != want {
			return at("got %v, want %v", got, want)
		}
	}
	return ""
}

func empty(v any) bool {
	a, ok := v.([]any)
	return v == nil || ok && len(a) == 0
}

// clip quotes s, cut to about n bytes.
func clip(s string, n int) string {
	if len(s) <= n {
		return strconv.Quote(s)
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}
