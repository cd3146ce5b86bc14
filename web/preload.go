package web

import (
	"fmt"
	"html/template"
	"regexp"
	"slices"
	"strings"
)

// staticImport matches a static import of a sibling module (import … from
// './x.js', export … from './x.js', import './x.js'). Dynamic import() is
// not followed: it loads on demand.
var staticImport = regexp.MustCompile(`(?:\bfrom|\bimport)\s*'\./([A-Za-z0-9_-]+\.js)'`)

// modulePreloads returns <link rel="modulepreload"> for every module that
// session/<root> imports, directly or not, in a stable order. Without
// them the browser finds each level of the import graph only once the
// level above has loaded: five round trips deep for the shell, every
// session, since each session has origins of its own and so nothing in
// the HTTP cache (measured: 200–370 ms between the shell's first byte and
// its script running). With them the whole graph is asked for at once.
func modulePreloads(root string) (template.HTML, error) {
	seen, err := moduleGraph(root)
	if err != nil {
		return "", err
	}
	delete(seen, root)
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "<link rel=\"modulepreload\" href=\"%s%s\">\n", ShellPrefix, n)
	}
	return template.HTML(b.String()), nil
}

// directImports returns the sibling modules session/<name> imports itself.
func directImports(name string) ([]string, error) {
	src, err := files.ReadFile("session/" + name)
	if err != nil {
		return nil, fmt.Errorf("web: module %s: %w", name, err)
	}
	var out []string
	for _, m := range staticImport.FindAllStringSubmatch(string(src), -1) {
		out = append(out, m[1])
	}
	return out, nil
}

// moduleGraph returns session/<root> and every module it imports,
// directly or not.
func moduleGraph(root string) (map[string]bool, error) {
	seen := map[string]bool{root: true}
	queue := []string{root}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		imports, err := directImports(name)
		if err != nil {
			return nil, err
		}
		for _, m := range imports {
			if !seen[m] {
				seen[m] = true
				queue = append(queue, m)
			}
		}
	}
	return seen, nil
}
