package web

import (
	"fmt"
	"html/template"
	"regexp"
	"strings"
)

// The session window's HTML files (session/*.html) hold no text of their
// own: they name keys of the session's message catalog, session/messages.js,
// which the session's modules import, and Go renders them from the same
// object. The catalog is one 'key': 'text', per line (single quotes, \' the
// only escape) or a // comment, so it is read here without a JavaScript
// parser; web/test/messages.test.js holds the file to that form.

var (
	catalogLine    = regexp.MustCompile(`^'([A-Za-z0-9_.]+)': '((?:[^'\\]|\\')*)',$`)
	catalogPlacers = regexp.MustCompile(`\{(\w+)\}`)
)

// parseCatalog reads the en object of a session/messages.js source.
func parseCatalog(src string) (map[string]string, error) {
	_, rest, ok := strings.Cut(src, "\nexport const en = {\n")
	if !ok {
		return nil, fmt.Errorf("web: messages.js has no 'export const en = {' line")
	}
	body, _, ok := strings.Cut(rest, "\n};\n")
	if !ok {
		return nil, fmt.Errorf("web: messages.js: the en object does not end with a '};' line")
	}
	out := map[string]string{}
	for i, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "//") {
			continue
		}
		m := catalogLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("web: messages.js en line %d is not 'key': 'text',: %q", i+1, line)
		}
		if _, dup := out[m[1]]; dup {
			return nil, fmt.Errorf("web: messages.js: key %q twice", m[1])
		}
		out[m[1]] = strings.ReplaceAll(m[2], `\'`, `'`)
	}
	return out, nil
}

// sessionCatalog is the English catalog of the session window.
func sessionCatalog() map[string]string {
	src, err := files.ReadFile("session/messages.js")
	if err != nil {
		panic("web: " + err.Error()) // a build error: the file is embedded
	}
	c, err := parseCatalog(string(src))
	if err != nil {
		panic(err.Error()) // a build error, which web tests and node tests catch
	}
	return c
}

// sessionTemplate parses one of session/*.html with the catalog's msg
// function: {{msg "key"}}, or {{msg "key" "name" value …}} for placeholders.
func sessionTemplate(catalog map[string]string, name string) *template.Template {
	msg := func(key string, kv ...string) (string, error) {
		text, ok := catalog[key]
		if !ok {
			return "", fmt.Errorf("web: no message %q in session/messages.js", key)
		}
		params := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			params[kv[i]] = kv[i+1]
		}
		return catalogPlacers.ReplaceAllStringFunc(text, func(p string) string {
			if v, ok := params[p[1:len(p)-1]]; ok {
				return v
			}
			return p
		}), nil
	}
	return template.Must(template.New(name).Funcs(template.FuncMap{"msg": msg, "preload": modulePreloads}).ParseFS(files, "session/"+name))
}

// renderStatic renders a session page that takes no data, once.
func renderStatic(catalog map[string]string, name string) []byte {
	var b strings.Builder
	if err := sessionTemplate(catalog, name).Execute(&b, nil); err != nil {
		panic("web: " + name + ": " + err.Error()) // a build error: a key is missing
	}
	return []byte(b.String())
}
