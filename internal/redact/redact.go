// Package redact keeps secrets out of the access log: it records what a
// form submission or a query string sent, field by field, with the values
// of secret fields and the values that look like keys taken out. The agent
// applies it before an entry leaves it; signaling applies Target again to
// what it exports (an older agent's entries), and a redacted target is
// left as it is.
//
// A field is secret when its name holds, in any case, one of SecretNames
// (the agent cannot see a form's input types in the body, so a password
// field is known by its name). A value looks like a key when it holds a
// PEM block, is 32 or more hex digits, base64 of 32 or more bytes, or a
// long string of high entropy (Key).
package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/porthole-dev/porthole/proto"
)

// SecretNames are the parts of a field name that make it secret.
var SecretNames = []string{"pass", "pwd", "secret", "token", "key", "community", "auth", "credential", "psk", "private"}

// Marker stands for a redacted value in a query string.
const Marker = "[redacted]"

// Name reports whether a field called name holds a secret.
func Name(name string) bool {
	n := strings.ToLower(name)
	for _, s := range SecretNames {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// Key reports whether v looks like a key, whatever its field's name.
func Key(v string) bool {
	v = strings.TrimSpace(v)
	if strings.Contains(v, "-----BEGIN ") || strings.Contains(v, "PRIVATE KEY") {
		return true
	}
	if strings.ContainsAny(v, " \t\r\n") {
		// "Bearer eyJ…", "key: 9f86d0…": any word that is a key.
		for _, w := range strings.Fields(v) {
			if keyWord(w) {
				return true
			}
		}
		return false
	}
	return keyWord(v)
}

// keyWord reports whether v, one word, looks like a key.
func keyWord(v string) bool {
	if len(v) >= 32 && strings.Trim(v, "0123456789abcdefABCDEF") == "" {
		return true
	}
	if len(v) >= 43 && strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-") == "" {
		// Judged on a whole number of base64 quanta: a value cut short
		// (a form's bounded field) still counts.
		w := strings.TrimRight(v, "=")
		w = w[:len(w)/4*4]
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(w); err == nil && len(b) >= 32 {
				return true
			}
		}
	}
	return highEntropy(v)
}

// highEntropy: 20 or more characters without a space, of three or more
// classes (lower, upper, digit, other), at 3.5 bits per character or more.
func highEntropy(v string) bool {
	if len(v) < 20 || strings.ContainsAny(v, " \t\r\n") {
		return false
	}
	var lower, upper, digit, other int
	counts := map[rune]int{}
	n := 0
	for _, r := range v {
		counts[r]++
		n++
		switch {
		case 'a' <= r && r <= 'z':
			lower = 1
		case 'A' <= r && r <= 'Z':
			upper = 1
		case '0' <= r && r <= '9':
			digit = 1
		default:
			other = 1
		}
	}
	if lower+upper+digit+other < 3 {
		return false
	}
	h := 0.0
	for _, c := range counts {
		p := float64(c) / float64(n)
		h -= p * math.Log2(p)
	}
	return h >= 3.5
}

// Secret reports whether the field name=value must not be recorded.
func Secret(name, value string) bool { return Name(name) || Key(value) }

// Target is an origin-form request target with the values of its query's
// secret fields replaced by Marker. The path is kept as it is; a query
// that is not name=value pairs is redacted whole when any part of it looks
// like a key.
func Target(target string) string {
	path, query, ok := strings.Cut(target, "?")
	if !ok {
		return target
	}
	return path + "?" + Query(query)
}

// Query redacts a raw query string (see Target).
func Query(raw string) string {
	if raw == "" {
		return raw
	}
	parts := strings.Split(raw, "&")
	for i, kv := range parts {
		k, v, hasV := strings.Cut(kv, "=")
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil {
			dk = k
		}
		if err2 != nil {
			dv = v
		}
		if v == url.QueryEscape(Marker) || v == Marker {
			continue
		}
		switch {
		case hasV && (Secret(dk, dv) || Secret(dk, v)):
			parts[i] = k + "=" + url.QueryEscape(Marker)
		case !hasV && (Key(dk) || Key(k)):
			parts[i] = url.QueryEscape(Marker)
		}
	}
	return strings.Join(parts, "&")
}

// Limits of what Form reads.
const (
	// MaxBody is how much of a urlencoded or JSON body Form parses.
	MaxBody = 64 << 10
	// maxDepth bounds a JSON body's nesting that Form follows.
	maxDepth = 8
)

// Encoding is the form encoding of a Content-Type, or "" for a body
// that is not a form.
func Encoding(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	switch {
	case mt == "application/x-www-form-urlencoded":
		return proto.FormURLEncoded
	case mt == "multipart/form-data":
		return proto.FormMultipart
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return proto.FormJSON
	}
	return ""
}

// Form reads a form body of contentType from r to its end (or where it
// stops) and returns its fields, redacted; nil when the body is no form.
// A multipart body is streamed: a file part's content is counted, never
// kept. Form always drains r, so it can read the far end of a tee.
func Form(contentType string, r io.Reader) *proto.AccessForm {
	defer func() { _, _ = io.Copy(io.Discard, r) }()
	enc := Encoding(contentType)
	b := &builder{f: &proto.AccessForm{Encoding: enc, Fields: []proto.AccessField{}}}
	switch enc {
	case proto.FormURLEncoded:
		body, trunc := readBounded(r)
		b.f.Truncated = trunc
		b.urlencoded(string(body))
	case proto.FormJSON:
		body, trunc := readBounded(r)
		b.f.Truncated = trunc
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			b.f.Truncated = true
			return b.f
		}
		b.json("", v, 0)
	case proto.FormMultipart:
		_, params, _ := mime.ParseMediaType(contentType)
		b.multipart(r, params["boundary"])
	default:
		return nil
	}
	return b.f
}

func readBounded(r io.Reader) ([]byte, bool) {
	body, _ := io.ReadAll(io.LimitReader(r, MaxBody+1))
	if len(body) > MaxBody {
		return body[:MaxBody], true
	}
	return body, false
}

// builder collects fields within the form's bounds.
type builder struct {
	f     *proto.AccessForm
	bytes int
}

// add records a field, redacting its value when it is secret.
func (b *builder) add(name, value string) {
	b.addField(proto.AccessField{Name: name, Value: value}, Secret(name, value))
}

func (b *builder) addField(fd proto.AccessField, secret bool) {
	if secret {
		fd.Value, fd.Redacted = "", true
	}
	if len(b.f.Fields) >= proto.MaxFormFields {
		b.f.Truncated = true
		return
	}
	if len(fd.Name) > proto.MaxFieldName {
		fd.Name = clip(fd.Name, proto.MaxFieldName)
		b.f.Truncated = true
	}
	if len(fd.Value) > proto.MaxFieldValue {
		fd.Value = clip(fd.Value, proto.MaxFieldValue)
		b.f.Truncated = true
		if Key(fd.Value) {
			// What is kept looks like a key even if the whole did not.
			fd.Value, fd.Redacted = "", true
		}
	}
	if len(fd.File) > proto.MaxFieldName {
		fd.File = clip(fd.File, proto.MaxFieldName)
		b.f.Truncated = true
	}
	n := len(fd.Name) + len(fd.Value) + len(fd.File)
	if b.bytes+n > proto.MaxFormBytes {
		b.f.Truncated = true
		return
	}
	b.bytes += n
	b.f.Fields = append(b.f.Fields, fd)
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}

func (b *builder) urlencoded(body string) {
	for kv := range strings.SplitSeq(body, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			dk = k
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			dv = v
		}
		b.add(dk, dv)
	}
}

// json records every leaf of v under its dotted name; a secret name
// anywhere on the way redacts the leaves under it.
func (b *builder) json(name string, v any, depth int) {
	if depth > maxDepth {
		b.addField(proto.AccessField{Name: name}, true)
		b.f.Truncated = true
		return
	}
	join := func(k string) string {
		if name == "" {
			return k
		}
		return name + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if Name(k) {
				b.addField(proto.AccessField{Name: join(k)}, true)
				continue
			}
			b.json(join(k), x[k], depth+1)
		}
	case []any:
		for i, e := range x {
			b.json(name+"["+strconv.Itoa(i)+"]", e, depth+1)
		}
	case string:
		b.add(name, x)
	case json.Number:
		b.add(name, x.String())
	case bool:
		b.add(name, strconv.FormatBool(x))
	case nil:
		b.add(name, "null")
	}
}

func (b *builder) multipart(r io.Reader, boundary string) {
	if boundary == "" {
		b.f.Truncated = true
		return
	}
	mr := multipart.NewReader(r, boundary)
	for {
		p, err := mr.NextRawPart() // no decoding of the part's transfer encoding
		if err != nil {
			if !errors.Is(err, io.EOF) {
				b.f.Truncated = true
			}
			return
		}
		name := p.FormName()
		if file := p.FileName(); file != "" || p.Header.Get("Content-Type") != "" && !strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			n, _ := io.Copy(io.Discard, p)
			if file == "" {
				file = "(unnamed)"
			}
			b.addField(proto.AccessField{Name: name, File: file, Size: n}, false)
			continue
		}
		val, _ := io.ReadAll(io.LimitReader(p, proto.MaxFieldValue+1))
		extra, _ := io.Copy(io.Discard, p)
		v := string(val)
		if extra > 0 || len(val) > proto.MaxFieldValue {
			// Too long to keep: judge what was read, record a cut value.
			b.f.Truncated = true
		}
		b.add(name, v)
	}
}

// Fields returns f with every field that is secret by its name or value
// redacted (a copy; f itself is left alone), for a form recorded by an
// agent that may not have redacted it. Nil stays nil.
func Fields(f *proto.AccessForm) *proto.AccessForm {
	if f == nil {
		return nil
	}
	out := *f
	out.Fields = make([]proto.AccessField, len(f.Fields))
	for i, fd := range f.Fields {
		if fd.Value != "" && Secret(fd.Name, fd.Value) {
			fd.Value, fd.Redacted = "", true
		}
		out.Fields[i] = fd
	}
	return &out
}
