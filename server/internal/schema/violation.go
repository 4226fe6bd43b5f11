package schema

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
)

// Messages the library's own wording is replaced with, because they are
// what a merchant's developer reads in an error body.
const (
	msgRequired   = "is required"
	msgUnknown    = "additional property %s is not allowed"
	msgNotAllowed = "is not allowed here"
	msgNeedsOneOf = "needs one of %s"
	msgNeedsOne   = "needs exactly one of %s"
	msgAlternates = "must match one of the alternatives: %s"
	msgMatchesTwo = "must match exactly one alternative, but %s"
	msgPattern    = "must match the pattern %s"
)

// counted returns the library's format of a count message, whose wording is
// off ("maximum 2 items required"), and ours.
func counted(kw string) (lib, ours string) {
	switch kw {
	case "minItems":
		return "minimum %d items required, but found %d items", "must have at least %d items, but has %d"
	case "maxItems":
		return "maximum %d items required, but found %d items", "must have at most %d items, but has %d"
	case "minProperties":
		return "minimum %d properties allowed, but found %d properties", "must have at least %d properties, but has %d"
	default: // maxProperties
		return "maximum %d properties allowed, but found %d properties", "must have at most %d properties, but has %d"
	}
}

// violations flattens a validation error into its leaf violations, sorted by
// path and message with duplicates removed so that the order is stable
// whatever order the library visited the properties in.
func violations(err error) ([]sandbox.Violation, error) {
	if err == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil, &sandbox.Error{Code: sandbox.CodeInternal, Message: "schema validation failed", Err: err}
	}
	var out []sandbox.Violation
	collect(ve, &out)
	slices.SortFunc(out, func(a, b sandbox.Violation) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	return slices.Compact(out), nil
}

// collect appends the leaves under ve. anyOf/oneOf failures are one
// violation each: listing every branch's leaves separately would read as if
// all of them had to hold.
func collect(ve *jsonschema.ValidationError, out *[]sandbox.Violation) {
	kw := keyword(ve.KeywordLocation)
	if len(ve.Causes) > 0 && (kw == "anyOf" || kw == "oneOf") {
		*out = append(*out, alternatives(ve, kw))
		return
	}
	if len(ve.Causes) == 0 {
		*out = append(*out, leaf(ve, kw)...)
		return
	}
	for _, c := range ve.Causes {
		collect(c, out)
	}
}

// leaf turns one library error into violations with plain messages.
// "required" and "additionalProperties" name several properties at once;
// each becomes its own violation at the property's own path, which is where
// the merchant has to look.
func leaf(ve *jsonschema.ValidationError, kw string) []sandbox.Violation {
	path := pointer(ve.InstanceLocation)
	switch kw {
	case "required":
		names := quotedNames(strings.TrimPrefix(ve.Message, "missing properties: "))
		vs := make([]sandbox.Violation, len(names))
		for i, n := range names {
			vs[i] = sandbox.Violation{Path: path + "/" + escapeToken(n), Message: msgRequired}
		}
		return vs
	case "additionalProperties":
		if strings.HasPrefix(ve.Message, "additionalProperties ") {
			msg := strings.TrimSuffix(strings.TrimPrefix(ve.Message, "additionalProperties "), " not allowed")
			names := quotedNames(msg)
			vs := make([]sandbox.Violation, len(names))
			for i, n := range names {
				vs[i] = sandbox.Violation{Path: path + "/" + escapeToken(n), Message: fmt.Sprintf(msgUnknown, strconv.Quote(n))}
			}
			return vs
		}
	case "oneOf":
		// Matched more than one branch: the library says which.
		return []sandbox.Violation{{Path: path, Message: fmt.Sprintf(msgMatchesTwo, strings.Replace(ve.Message, "valid against", "it matches", 1))}}
	case "not":
		return []sandbox.Violation{{Path: path, Message: msgNotAllowed}}
	case "pattern":
		if p := quotedNames(ve.Message); len(p) == 1 {
			return []sandbox.Violation{{Path: path, Message: fmt.Sprintf(msgPattern, p[0])}}
		}
	case "minItems", "maxItems", "minProperties", "maxProperties":
		var limit, got int
		lib, ours := counted(kw)
		if n, _ := fmt.Sscanf(ve.Message, lib, &limit, &got); n == 2 {
			return []sandbox.Violation{{Path: path, Message: fmt.Sprintf(ours, limit, got)}}
		}
	}
	if ve.Message == "not allowed" { // a false schema: "properties": {"x": false}
		return []sandbox.Violation{{Path: path, Message: msgNotAllowed}}
	}
	return []sandbox.Violation{{Path: path, Message: ve.Message}}
}

// alternatives describes a failed anyOf/oneOf at its own path. When every
// branch only misses one property (the usual "equals or prefix" idiom), it
// says which properties could satisfy it; otherwise it lists what each
// branch wanted, relative to the node.
func alternatives(ve *jsonschema.ValidationError, kw string) sandbox.Violation {
	path := pointer(ve.InstanceLocation)
	var branches [][]sandbox.Violation
	onlyRequired := true
	for _, c := range ve.Causes {
		var vs []sandbox.Violation
		collect(c, &vs)
		if len(vs) != 1 || vs[0].Message != msgRequired {
			onlyRequired = false
		}
		branches = append(branches, vs)
	}
	if onlyRequired {
		names := make([]string, len(branches))
		for i, b := range branches {
			names[i] = strconv.Quote(unescapeToken(strings.TrimPrefix(b[0].Path, path+"/")))
		}
		format := msgNeedsOneOf
		if kw == "oneOf" {
			format = msgNeedsOne
		}
		return sandbox.Violation{Path: path, Message: fmt.Sprintf(format, strings.Join(names, " or "))}
	}
	parts := make([]string, len(branches))
	for i, b := range branches {
		items := make([]string, len(b))
		for j, v := range b {
			rel := strings.TrimPrefix(v.Path, path)
			if rel != "" {
				items[j] = rel + " " + v.Message
			} else {
				items[j] = v.Message
			}
		}
		parts[i] = strings.Join(items, ", ")
	}
	return sandbox.Violation{Path: path, Message: fmt.Sprintf(msgAlternates, strings.Join(parts, "; or "))}
}

// keyword is the last token of a keyword location ("/properties/a/required"
// → "required").
func keyword(loc string) string {
	return loc[strings.LastIndexByte(loc, '/')+1:]
}

// pointer turns the library's instance location, whose tokens are
// URL-path-escaped on top of JSON-pointer escaping, into a plain JSON
// pointer.
func pointer(loc string) string {
	if !strings.Contains(loc, "%") {
		return loc
	}
	tokens := strings.Split(loc, "/")
	for i, t := range tokens {
		if u, err := url.PathUnescape(t); err == nil {
			tokens[i] = u
		}
	}
	return strings.Join(tokens, "/")
}

// escapeToken escapes a property name as a JSON pointer token (RFC 6901).
func escapeToken(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func unescapeToken(s string) string {
	if !strings.Contains(s, "~") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

// quotedNames parses the library's list of single-quoted property names
// ('a', 'b\'c'): Go-quoted text whose ' is escaped and whose " is bare.
func quotedNames(s string) []string {
	var names []string
	for i := 0; i < len(s); i++ {
		if s[i] != '\'' {
			continue
		}
		j := i + 1
		for ; j < len(s) && s[j] != '\''; j++ {
			if s[j] == '\\' {
				j++
			}
		}
		inner := s[i+1 : min(j, len(s))]
		inner = strings.ReplaceAll(strings.ReplaceAll(inner, `\'`, `'`), `"`, `\"`)
		n, err := strconv.Unquote(`"` + inner + `"`)
		if err != nil {
			n = inner
		}
		names = append(names, n)
		i = j
	}
	return names
}
