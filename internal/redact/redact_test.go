package redact

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"strings"
	"testing"

	"github.com/porthole-dev/porthole/proto"
)

const pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n"

func TestNameAndKey(t *testing.T) {
	for _, n := range []string{"password", "Password", "admin_pwd", "passwd", "client_secret", "csrfToken", "api-key", "APIKEY",
		"snmpCommunity", "auth", "OAuthCode", "credentials", "wpa_psk", "private_cert"} {
		if !Name(n) {
			t.Errorf("Name(%q) = false", n)
		}
	}
	for _, n := range []string{"user", "username", "hostname", "ip", "dns1", "toner", "contact", "location", "design", "signal"} {
		if Name(n) {
			t.Errorf("Name(%q) = true", n)
		}
	}
	for _, v := range []string{pem,
		"0123456789abcdef0123456789abcdef",                                 // 32 hex
		"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", // sha256 hex
		"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=",                     // base64 of 32 bytes
		"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA",                      // unpadded
		"ghp_R4nd0mT0k3nV4lu3Xq9Zk2Lm8Np1Qr",                               // a token of high entropy
		"Xk9#mP2$vL8@qR5!wT3&zY7*",
		"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", // a JWT after a word
	} {
		if !Key(v) {
			t.Errorf("Key(%q) = false", v)
		}
	}
	for _, v := range []string{"", "on", "192.168.1.20", "Front desk printer", "Europe/Berlin", "public", "admin",
		"https://printer.example/status", "2026-12-07T14:00:00Z", "toner-low-warning-threshold"} {
		if Key(v) {
			t.Errorf("Key(%q) = true", v)
		}
	}
}

func TestTarget(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/status", "/status"},
		{"/status?page=2", "/status?page=2"},
		{"/login?user=tech&password=hunter2", "/login?user=tech&password=%5Bredacted%5D"},
		{"/api?token=abc&x=1&Community=public", "/api?token=%5Bredacted%5D&x=1&Community=%5Bredacted%5D"},
		{"/api?q=0123456789abcdef0123456789abcdef", "/api?q=%5Bredacted%5D"},
		{"/api?0123456789abcdef0123456789abcdef", "/api?%5Bredacted%5D"},
		{"/api?pass%77ord=x", "/api?pass%77ord=%5Bredacted%5D"}, // escaped name: judged decoded
		{"/api?pwd=%5Bredacted%5D", "/api?pwd=%5Bredacted%5D"},  // already redacted: unchanged
		{"/cgi?a&&b=", "/cgi?a&&b="},
	} {
		if got := Target(tc.in); got != tc.want {
			t.Errorf("Target(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := Target(Target(tc.in)); got != tc.want {
			t.Errorf("Target is not idempotent on %q: %q", tc.in, got)
		}
	}
}

func fields(f *proto.AccessForm) map[string]proto.AccessField {
	m := map[string]proto.AccessField{}
	for _, fd := range f.Fields {
		m[fd.Name] = fd
	}
	return m
}

// TestFormURLEncoded: a body as a browser submits a settings form.
func TestFormURLEncoded(t *testing.T) {
	body := "hostname=printer+front&dns1=192.168.1.1&admin_password=s3cr%C3%A9t+pass&snmp_community=private-c0mm&note=" +
		url.QueryEscape(pem) + "&apply=Save"
	f := Form("application/x-www-form-urlencoded; charset=UTF-8", strings.NewReader(body))
	if f.Encoding != proto.FormURLEncoded || f.Truncated {
		t.Fatalf("form %+v", f)
	}
	m := fields(f)
	if m["hostname"].Value != "printer front" || m["dns1"].Value != "192.168.1.1" || m["apply"].Value != "Save" {
		t.Errorf("plain fields: %+v", f.Fields)
	}
	for _, n := range []string{"admin_password", "snmp_community", "note"} {
		if !m[n].Redacted || m[n].Value != "" {
			t.Errorf("%s not redacted: %+v", n, m[n])
		}
	}
	assertAbsent(t, f, "s3cr", "private-c0mm", "BEGIN PRIVATE")
}

// TestFormMultipart: a firmware upload with a file part and a password.
func TestFormMultipart(t *testing.T) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("action", "upgrade")
	_ = mw.WriteField("password", "hunter2-firmware")
	fw, _ := mw.CreateFormFile("image", "npi4000-v2.1.bin")
	content := bytes.Repeat([]byte("FIRMWARE-SECRET-CONTENT "), 10000)
	_, _ = fw.Write(content)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="cert"`)
	h.Set("Content-Type", "application/x-pem-file")
	pw, _ := mw.CreatePart(h)
	_, _ = pw.Write([]byte(pem))
	_ = mw.WriteField("apiKey", "k")
	_ = mw.Close()
	f := Form(mw.FormDataContentType(), &buf)
	if f.Encoding != proto.FormMultipart || f.Truncated {
		t.Fatalf("form %+v", f)
	}
	m := fields(f)
	if m["action"].Value != "upgrade" {
		t.Errorf("action: %+v", m["action"])
	}
	if img := m["image"]; img.File != "npi4000-v2.1.bin" || img.Size != int64(len(content)) || img.Value != "" {
		t.Errorf("file part: %+v", img)
	}
	if c := m["cert"]; c.File != "(unnamed)" || c.Size != int64(len(pem)) {
		t.Errorf("unnamed file part: %+v", c)
	}
	if !m["password"].Redacted || !m["apiKey"].Redacted {
		t.Errorf("secrets: %+v", f.Fields)
	}
	assertAbsent(t, f, "hunter2", "FIRMWARE-SECRET", "BEGIN")
}

// TestFormMultipartChromium: the bytes Chromium sends for a form with a
// file input, as captured (CRLF, quoted names).
func TestFormMultipartChromium(t *testing.T) {
	body := "------WebKitFormBoundaryx4Qv1nYk3oD3m2bT\r\n" +
		"Content-Disposition: form-data; name=\"fw\"; filename=\"fw.bin\"\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n" +
		"\x7fELF\x00\x01binary\r\n" +
		"------WebKitFormBoundaryx4Qv1nYk3oD3m2bT\r\n" +
		"Content-Disposition: form-data; name=\"Admin Pass\"\r\n\r\n" +
		"letmein-now\r\n" +
		"------WebKitFormBoundaryx4Qv1nYk3oD3m2bT--\r\n"
	f := Form("multipart/form-data; boundary=----WebKitFormBoundaryx4Qv1nYk3oD3m2bT", strings.NewReader(body))
	m := fields(f)
	if m["fw"].File != "fw.bin" || m["fw"].Size != 12 || !m["Admin Pass"].Redacted || f.Truncated {
		t.Fatalf("form %+v", f)
	}
	assertAbsent(t, f, "letmein", "ELF")
}

// TestFormJSON: nested keys, arrays, a secret subtree.
func TestFormJSON(t *testing.T) {
	body := `{"network":{"hostname":"p1","dns":["1.1.1.1","8.8.8.8"],"wifi":{"ssid":"Office","psk":"correct horse"}},
	 "auth":{"user":"admin","method":"basic"},"enabled":true,"count":3,"nothing":null,
	 "cert":"` + strings.ReplaceAll(pem, "\n", `\n`) + `","deep":{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":"far"}}}}}}}}}}`
	f := Form("application/json", strings.NewReader(body))
	if f.Encoding != proto.FormJSON {
		t.Fatalf("form %+v", f)
	}
	m := fields(f)
	if m["network.hostname"].Value != "p1" || m["network.dns[1]"].Value != "8.8.8.8" || m["network.wifi.ssid"].Value != "Office" ||
		m["enabled"].Value != "true" || m["count"].Value != "3" || m["nothing"].Value != "null" {
		t.Errorf("fields %+v", f.Fields)
	}
	if !m["network.wifi.psk"].Redacted || !m["auth"].Redacted || !m["cert"].Redacted {
		t.Errorf("secrets %+v", f.Fields)
	}
	if !f.Truncated {
		t.Error("depth limit not reported")
	}
	assertAbsent(t, f, "correct horse", "admin", "BEGIN", "far")
}

func TestFormBounds(t *testing.T) {
	var sb strings.Builder
	for i := range 200 {
		sb.WriteString("f" + strings.Repeat("x", i%7) + "=" + strings.Repeat("v", 300) + "&")
	}
	f := Form("application/x-www-form-urlencoded", strings.NewReader(sb.String()))
	if !f.Truncated || len(f.Fields) > proto.MaxFormFields {
		t.Fatalf("%d fields, truncated %v", len(f.Fields), f.Truncated)
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if Form("text/plain", strings.NewReader("password=x")) != nil || Form("", strings.NewReader("")) != nil {
		t.Error("a body that is no form was recorded")
	}
	if f := Form("application/json", strings.NewReader(`{"a":`)); !f.Truncated {
		t.Error("broken JSON not reported")
	}
}

func assertAbsent(t *testing.T, f *proto.AccessForm, secrets ...string) {
	t.Helper()
	b, _ := json.Marshal(f)
	for _, s := range secrets {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("%q survived redaction: %s", s, b)
		}
	}
	if err := f.Validate(); err != nil {
		t.Error(err)
	}
}
