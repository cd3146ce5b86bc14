package web

import (
	"net/http"
	"strings"
	"testing"
)

// The session's HTML pages are rendered from session/messages.js: the text
// is the catalog's, and nothing of the template syntax reaches the browser.
func TestSessionPagesComeFromTheCatalog(t *testing.T) {
	cat := sessionCatalog()
	if cat["ended.title"] != "Session ended" || cat["notice.websocket"] == "" || !strings.Contains(cat["detached.before"], "device's page") {
		t.Fatalf("catalog misread: %q, %q", cat["ended.title"], cat["detached.before"])
	}
	for _, c := range []struct {
		h          http.Handler
		host, path string
		want       []string
	}{
		{shell(), shellHost, "/", []string{cat["status.loading"], "<title>" + cat["title.session"] + "</title>"}},
		{shell(), shellHost, ShellPrefix + "bar.html", []string{cat["bar.connecting"], cat["toolbar.end"]}},
		{device(), deviceHost, ShellPrefix + "relay.html", []string{cat["title.relay"]}},
		{device(), deviceHost, ShellPrefix + "ended", []string{cat["endPage.text"], cat["ended.details"]}},
		{device(), deviceHost, "/settings", []string{cat["detached.heading"], cat["detached.after"]}},
	} {
		b := body(t, get(t, c.h, c.host, http.MethodGet, c.path, map[string]string{"Sec-Fetch-Dest": "document"}))
		for _, w := range c.want {
			if !strings.Contains(b, w) {
				t.Errorf("%s%s lacks %q:\n%s", c.host, c.path, w, b)
			}
		}
		if strings.Contains(b, "{{") || strings.Contains(b, "msg") {
			t.Errorf("%s%s shows template syntax:\n%s", c.host, c.path, b)
		}
	}
}

func TestParseCatalogRefusesWhatItCannotRead(t *testing.T) {
	good := "// x\nexport const en = {\n  // a comment\n  'a.b': 'It\\'s {n}',\n\n};\nexport function t() {}\n"
	c, err := parseCatalog(good)
	if err != nil || len(c) != 1 || c["a.b"] != "It's {n}" {
		t.Fatalf("%v %q", err, c)
	}
	for _, bad := range []string{
		"export const en = {\n'a': 'b',\n};\n",                  // no line before: not the module's form
		"\nexport const en = {\n  \"a\": \"b\",\n};\n",          // double quotes
		"\nexport const en = {\n  'a': 'b' + 'c',\n};\n",        // an expression
		"\nexport const en = {\n  'a': 'b',\n  'a': 'c',\n};\n", // a key twice
		"\nexport const en = {\n  'a': 'b',\n",                  // no end
	} {
		if _, err := parseCatalog(bad); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
}
