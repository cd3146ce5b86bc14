package demodevice

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestLegacyEndpoints(t *testing.T) {
	d, srv := newServer(t, Config{})
	c := srv.Client()
	if resp, body := get(t, c, srv.URL+"/legacy"); resp.StatusCode != 200 || !strings.Contains(body, `src="/static/legacy.js"`) || !strings.Contains(body, `href="/favicon.ico"`) {
		t.Fatalf("/legacy: %s %q", resp.Status, body)
	}
	if resp, body := get(t, c, srv.URL+"/static/legacy.js"); resp.StatusCode != 200 || !strings.Contains(body, `x.open(method, url, false)`) {
		t.Fatalf("legacy.js: %s", resp.Status)
	}
	if _, body := get(t, c, srv.URL+"/api/legacy/info"); !strings.Contains(body, DefaultSerial) {
		t.Fatalf("info %q", body)
	}
	post := func(path, ct string, body []byte) string {
		resp, err := c.Post(srv.URL+path, ct, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := post("/api/legacy/echo", "text/plain", []byte("hello, device")); got != "13:HELLO, DEVICE" {
		t.Fatalf("echo %q", got)
	}
	bin := bytes.Repeat([]byte{0, 0xff, 0x80, 0x0a}, 1024)
	sum := sha256.Sum256(bin)
	if got := post("/api/legacy/blob", "application/octet-stream", bin); got != "4096 "+hex.EncodeToString(sum[:]) {
		t.Fatalf("blob POST %q", got)
	}
	resp, body := get(t, c, srv.URL+"/api/legacy/blob")
	if resp.Header.Get("Content-Type") != "application/octet-stream" || len(body) != 256 || body[255] != 0xff || body[0] != 0 {
		t.Fatalf("blob GET %d bytes", len(body))
	}
	resp, body = get(t, c, srv.URL+"/favicon.ico")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/x-icon" || !strings.HasPrefix(body, "\x00\x00\x01\x00") || d.Stats().Favicons.Load() != 1 {
		t.Fatalf("favicon: %s, %d bytes, counted %d", resp.Status, len(body), d.Stats().Favicons.Load())
	}
}
