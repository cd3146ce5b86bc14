package redact

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
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
		if !Name(name) || len(secret) < 6 || !utf8.ValidString(secret) || !utf8.ValidString(name) || !utf8.ValidString(other) {
			t.Skip()
		}
		// A value that also appears in what may be recorded proves nothing.
		for _, kept := range []string{name, other, "other", "urlencoded", "multipart", "json", "fields", "name", "value",
			"redacted", "truncated", "encoding", "true", "null", Marker, url.QueryEscape(Marker)} {
			if strings.Contains(kept, secret) || strings.Contains(secret, kept) && len(kept) >= len(secret)/2 {
				t.Skip()
			}
		}
		check := func(what string, out []byte) {
			if bytes.Contains(out, []byte(secret)) || bytes.Contains(out, []byte(url.QueryEscape(secret))) ||
				len(secret) >= 8 && bytes.Contains(out, []byte(secret[:8])) && !strings.Contains(name+other, secret[:8]) &&
					!strings.Contains(`"encoding":"urlencoded","fields":[{"name":"value":"redacted":true}]multipart`, secret[:8]) {
				t.Fatalf("%s: secret %q survived: %s", what, secret, out)
			}
		}
		// urlencoded
		body := url.Values{"other": {other}, name: {secret}}.Encode()
		js, _ := json.Marshal(Form("application/x-www-form-urlencoded", strings.NewReader(body)))
		check("urlencoded", js)
		// multipart
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("other", other)
		_ = mw.WriteField(name, secret)
		_ = mw.Close()
		js, _ = json.Marshal(Form(mw.FormDataContentType(), &buf))
		check("multipart", js)
		// JSON, flat and nested
		for _, v := range []any{map[string]any{"other": other, name: secret}, map[string]any{"a": map[string]any{name: []any{secret}}}} {
			b, _ := json.Marshal(v)
			js, _ = json.Marshal(Form("application/json", bytes.NewReader(b)))
			check("json", js)
		}
		// query
		check("query", []byte(Target("/x?other="+url.QueryEscape(other)+"&"+url.QueryEscape(name)+"="+url.QueryEscape(secret))))
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
