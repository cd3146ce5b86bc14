package proto

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"
)

// encoding/json is lenient where a wire decoder must not be: it replaces
// invalid UTF-8 and lone UTF-16 surrogate escapes with U+FFFD, and when an
// object repeats a key (or spells it again in another case, which it matches
// case-insensitively) the last one wins, so two parsers of one message can
// disagree on what it says. CheckJSON refuses both before anything is
// decoded; every decoder in this package runs it first, and so do
// signaling's API bodies.

// CheckJSON refuses JSON text that is not valid UTF-8, that escapes a lone
// UTF-16 surrogate, that is nested deeper than MaxJSONDepth, or that repeats
// a key in one object (keys are compared as encoding/json matches them,
// without regard to case). Syntax errors are left to the decoder.
func CheckJSON(b []byte) error {
	return checkJSON(b, MaxJSONDepth)
}

func checkJSON(b []byte, depth int) error {
	if !utf8.Valid(b) {
		return Errorf(CodeBadMessage, "JSON text is not valid UTF-8")
	}
	if err := checkDepth(b, depth); err != nil {
		return err
	}
	if err := checkSurrogates(b); err != nil {
		return err
	}
	return checkKeys(b)
}

// foldKey is how encoding/json compares an object key with a field name.
func foldKey(k string) string {
	return strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, k)
}

// checkKeys walks the tokens of b (iteratively: checkDepth has bounded the
// nesting) and refuses a repeated key and a lone surrogate escape.
func checkKeys(b []byte) error {
	type frame struct {
		keys    map[string]bool // nil for an array
		wantKey bool
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or a syntax error the decoder will report
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.keys != nil && top.wantKey {
			k := foldKey(s)
			if top.keys[k] {
				return Errorf(CodeBadMessage, "JSON object repeats the key %.40q", s)
			}
			top.keys[k] = true
			top.wantKey = false
			continue
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		// A value (scalar, or the start of an object or array): in an
		// object, a key comes next.
		if top != nil && top.keys != nil {
			top.wantKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		}
	}
}

// checkSurrogates refuses a \u escape of a UTF-16 surrogate that is not
// part of a pair (encoding/json would turn it into U+FFFD). b is the raw
// text; only escapes inside strings are looked at.
func checkSurrogates(b []byte) error {
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 < len(b) && b[i+1] == 'u' {
				r, ok := hex4(b, i+2)
				switch {
				case !ok:
				case r >= 0xd800 && r <= 0xdbff:
					if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
						if lo, ok := hex4(b, i+8); ok && lo >= 0xdc00 && lo <= 0xdfff {
							i += 11
							continue
						}
					}
					return Errorf(CodeBadMessage, "JSON string escapes a lone UTF-16 surrogate")
				case r >= 0xdc00 && r <= 0xdfff:
					return Errorf(CodeBadMessage, "JSON string escapes a lone UTF-16 surrogate")
				}
				i += 5
				continue
			}
			i++ // the escaped character
		}
	}
	return nil
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
