package web

import (
	"strings"
	"testing"
)

// The session pages preload their whole static import graph, each module
// once and only modules of their own origin's set.
func TestSessionPagesPreloadTheirModules(t *testing.T) {
	catalog := sessionCatalog()
	for _, tc := range []struct {
		page   string
		want   []string // deepest levels of the graph included
		served map[string]bool
	}{
		{"shell.html", []string{"tunnel.js", "headers.js", "frames.js", "strictjson.js", "shellflow.js", "catalog.js"}, shellAssets},
		{"relay.html", []string{"protocol.js", "messages.js", "catalog.js"}, deviceAssets},
	} {
		page := string(renderStatic(catalog, tc.page))
		for _, m := range tc.want {
			link := `<link rel="modulepreload" href="/__t/` + m + `">`
			if n := strings.Count(page, link); n != 1 {
				t.Errorf("%s: %d × %s, want 1", tc.page, n, link)
			}
		}
		for _, line := range strings.Split(page, "\n") {
			name, ok := strings.CutPrefix(line, `<link rel="modulepreload" href="/__t/`)
			if !ok {
				continue
			}
			name = strings.TrimSuffix(name, `">`)
			if !tc.served[name] {
				t.Errorf("%s preloads %s, which its origin does not serve", tc.page, name)
			}
		}
	}
}

// The service worker names its whole import graph itself (sw.js): a
// worker's imports cannot be preloaded, so each level deeper would cost a
// round trip on every session's setup.
func TestWorkerImportsItsGraphDirectly(t *testing.T) {
	all, err := moduleGraph("sw.js")
	if err != nil {
		t.Fatal(err)
	}
	direct, err := directImports("sw.js")
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{"sw.js": true}
	for _, m := range direct {
		has[m] = true
	}
	for m := range all {
		if !has[m] {
			t.Errorf("sw.js imports %s only through another module: import it in sw.js too", m)
		}
	}
	if len(all) < 8 {
		t.Errorf("sw.js's graph has %d modules, want its known 8 or more: %v", len(all), all)
	}
}
