package httpapi

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/mpsandbox/mpsandbox/server/internal/sandbox"
	"github.com/mpsandbox/mpsandbox/server/internal/schema"
)

// DecodeJSON checks body against the named schema and, when it conforms,
// decodes it into out. Invalid UTF-8, malformed JSON, wrong types, unknown
// fields and missing ones all come back as one CodeInvalid error listing
// every violation with its JSON pointer — the schema is the single source of
// what a body may hold.
func DecodeJSON(v sandbox.Validator, name string, body []byte, out any) error {
	if err := readable(body); err != nil {
		return err
	}
	violations, err := v.ValidateJSON(name, body)
	if err != nil {
		return err
	}
	if len(violations) > 0 {
		return sandbox.Invalid(fmt.Sprintf("request body does not match schema %s", name), violations...)
	}
	if err := json.Unmarshal(body, out); err != nil {
		// The schema accepted what the Go type cannot hold: say so plainly.
		return sandbox.Invalid("request body cannot be decoded", sandbox.Violation{Path: "", Message: err.Error()})
	}
	return nil
}

// DecodeDoc checks body as DecodeJSON does and returns it decoded once as
// the schema saw it — objects as map[string]any, numbers as json.Number —
// and its top-level members' bytes as sent (schema.DecodeMembers).
func DecodeDoc(v sandbox.Validator, name string, body []byte) (any, map[string][]byte, error) {
	if err := readable(body); err != nil {
		return nil, nil, err
	}
	doc, members, bad := schema.DecodeMembers(body)
	if bad != nil {
		return nil, nil, sandbox.Invalid(fmt.Sprintf("request body does not match schema %s", name), *bad)
	}
	violations, err := v.Validate(name, doc)
	if err != nil {
		return nil, nil, err
	}
	if len(violations) > 0 {
		return nil, nil, sandbox.Invalid(fmt.Sprintf("request body does not match schema %s", name), violations...)
	}
	return doc, members, nil
}

// readable refuses an empty body and one that is not UTF-8.
func readable(body []byte) error {
	if len(body) == 0 {
		return sandbox.Invalid("request body is empty; a JSON object is expected", sandbox.Violation{Path: "", Message: "empty body"})
	}
	if !utf8.Valid(body) {
		return sandbox.Invalid("request body is not valid UTF-8",
			sandbox.Violation{Path: "", Message: fmt.Sprintf("invalid UTF-8 at byte %d", invalidUTF8At(body))})
	}
	return nil
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}
