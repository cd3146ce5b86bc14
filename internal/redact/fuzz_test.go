package redact

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/porthole-dev/porthole/proto"
)

// FuzzRedact: whatever a secret field's value is, and whatever sits
// around it, no encoding of a form or a query lets the value through.
func FuzzRedact(f *testing.F) {
	for _, seed := range [][3]string{
		{"password", "hunter2", "printer-1"},
		{"snmpCommunity", "private-c0mm", "public"},
		{"api_key", "0123456789abcdef0123456789abcdef", "x"},
		{"Admin Pass", "p&ss=w%rd;\"'\r\n", "a=b&c"},
		{"wifi.psk", "é😀 ключ", "日本"},
		{"token", pem, "-----"},
		{"x-auth", "[redacted]", "v"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, name, secret, other string) {
		if !Name(name) || name == "other" || secret == "" || !utf8.ValidString(secret) || !utf8.ValidString(name) || !utf8.ValidString(other) {
			t.Skip()
		}
		// Every field but "other" is the secret's (or the JSON object
		// around it); none may carry it, and the secret's own is redacted.
		check := func(what string, f *proto.AccessForm) {
			t.Helper()
			if f == nil {
				t.Fatalf("%s: no form", what)
			}
			sawSecret := false
			for _, fd := range f.Fields {
				if fd.Name == "other" {
					continue
				}
				if fd.Value != "" && strings.Contains(fd.Value, secret) || !fd.Redacted {
					t.Fatalf("%s: field %+v kept the secret %q", what, fd, secret)
				}
				sawSecret = true
			}
			if !sawSecret && !f.Truncated {
				t.Fatalf("%s: the secret's field is missing: %+v", what, f)
			}
		}
		// urlencoded
		body := url.Values{"other": {other}, name: {secret}}.Encode()
		check("urlencoded", Form("application/x-www-form-urlencoded", strings.NewReader(body)))
		// multipart
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("other", other)
		_ = mw.WriteField(name, secret)
		_ = mw.Close()
		check("multipart", Form(mw.FormDataContentType(), &buf))
		// JSON, flat and nested
		for _, v := range []any{map[string]any{"other": other, name: secret}, map[string]any{"a": map[string]any{name: []any{secret}}}} {
			b, _ := json.Marshal(v)
			check("json", Form("application/json", bytes.NewReader(b)))
		}
		// query: the secret's value is the marker, the rest as sent
		target := Target("/x?other=" + url.QueryEscape(other) + "&" + url.QueryEscape(name) + "=" + url.QueryEscape(secret))
		_, q, _ := strings.Cut(target, "?")
		for _, kv := range strings.Split(q, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if k == url.QueryEscape(name) && v != url.QueryEscape(Marker) {
				t.Fatalf("query: %s kept %q", name, v)
			}
		}
	})
}

// FuzzRedactForm: any body under any content type is recorded within
// the form's bounds, without a panic.
func FuzzRedactForm(f *testing.F) {
	f.Add("multipart/form-data; boundary=b", []byte("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b--\r\n"))
	f.Add("application/json", []byte(`{"a":[1,{"b":"c"}]}`))
	f.Add("application/x-www-form-urlencoded", []byte("a=%zz&b"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		form := Form(ct, bytes.NewReader(body))
		if form == nil {
			return
		}
		if err := form.Validate(); err != nil {
			t.Fatalf("form out of bounds: %v", err)
		}
		for _, fd := range form.Fields {
			if fd.Redacted && fd.Value != "" || !fd.Redacted && Secret(fd.Name, fd.Value) {
				t.Fatalf("field %+v kept a secret", fd)
			}
		}
	})
}
