package realews

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
)

// TestMonitHasAnAdminUI checks the real monit behaves as the compatibility
// test assumes: Basic login, a form token that must match its HttpOnly
// cookie, a 302 after the POST, the change visible on the page.
func TestMonitHasAnAdminUI(t *testing.T) {
	m := StartMonit(t)
	base := fmt.Sprintf("http://127.0.0.1:%d/", m.Port)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values) (*http.Response, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, base+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.SetBasicAuth(m.User, m.Pass)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, err := http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("Www-Authenticate"), "Basic") {
		t.Fatalf("no login asked: %d", resp.StatusCode)
	}
	_, page := do("GET", m.Check, nil)
	tok := MonitToken(page)
	if tok == "" {
		t.Fatalf("no form token: %.400s", page)
	}
	// A token that differs in its first character (a fixed "0" would be
	// the right token whenever the real one starts with 0).
	wrong := "0" + tok[1:]
	if tok[0] == '0' {
		wrong = "1" + tok[1:]
	}
	if resp, _ := do("POST", m.Check, url.Values{"securitytoken": {wrong}, "action": {"unmonitor"}}); resp.StatusCode != 403 {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	if resp, _ := do("POST", m.Check, url.Values{"securitytoken": {tok}, "action": {"unmonitor"}}); resp.StatusCode != 302 {
		t.Fatalf("unmonitor: %d", resp.StatusCode)
	}
}
