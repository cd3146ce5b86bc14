package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// stateAllowed are the module-relative prefixes whose packages may hold
// package state: the integration harness builds each binary once per test
// process (a sync.Once) and numbers its network namespaces.
var stateAllowed = []string{"integration"}

// goFile is one parsed non-test Go file of the module.
type goFile struct {
	dir  string // module-relative directory: the package
	name string // module-relative path
	f    *ast.File
}

// parseModule parses every non-test Go file of the module (not testdata,
// not node_modules, not hidden directories).
func parseModule(t *testing.T) (*token.FileSet, []goFile) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	root := strings.TrimSpace(string(out))
	fset := token.NewFileSet()
	var files []goFile
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		rel, _ := filepath.Rel(root, p)
		files = append(files, goFile{dir: filepath.ToSlash(filepath.Dir(rel)), name: filepath.ToSlash(rel), f: f})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("found only %d Go files under %s", len(files), root)
	}
	return fset, files
}

// stateViolations lists the package state of files: package-level
// variables of the sync and sync/atomic types (a pool, lock, once or
// counter shared by every value of the package), and assignments to
// package-level variables outside init (a table or setting written at run
// time). Read-only tables (a map literal nobody writes) pass.
func stateViolations(fset *token.FileSet, files []goFile) []string {
	vars := map[string]map[string]bool{} // package dir → its package-level var names
	top := map[*ast.ValueSpec]bool{}
	for _, gf := range files {
		if vars[gf.dir] == nil {
			vars[gf.dir] = map[string]bool{}
		}
		for _, d := range gf.f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				top[vs] = true
				for _, n := range vs.Names {
					if n.Name != "_" {
						vars[gf.dir][n.Name] = true
					}
				}
			}
		}
	}
	var out []string
	for _, gf := range files {
		if slices.ContainsFunc(stateAllowed, func(a string) bool { return gf.dir == a || strings.HasPrefix(gf.dir, a+"/") }) {
			continue
		}
		syncNames := importNames(gf.f, "sync", "sync/atomic")
		at := func(n ast.Node) string { return fmt.Sprintf("%s:%d", gf.name, fset.Position(n.Pos()).Line) }
		for _, d := range gf.f.Decls {
			switch d := d.(type) {
			case *ast.GenDecl:
				if d.Tok != token.VAR {
					continue
				}
				for _, s := range d.Specs {
					vs := s.(*ast.ValueSpec)
					exprs := append([]ast.Expr{vs.Type}, vs.Values...)
					for _, e := range exprs {
						if sel := syncType(e, syncNames); sel != "" && vs.Names[0].Name != "_" {
							out = append(out, fmt.Sprintf("%s: package-level %s %s: give it to the value that uses it", at(vs), vs.Names[0].Name, sel))
							break
						}
					}
				}
			case *ast.FuncDecl:
				if d.Body == nil || (d.Recv == nil && d.Name.Name == "init") {
					continue
				}
				isPkgVar := func(e ast.Expr) (string, bool) {
					id := rootIdent(e)
					if id == nil || id.Name == "_" {
						return "", false
					}
					if id.Obj != nil {
						vs, ok := id.Obj.Decl.(*ast.ValueSpec)
						return id.Name, ok && top[vs]
					}
					return id.Name, vars[gf.dir][id.Name]
				}
				ast.Inspect(d.Body, func(n ast.Node) bool {
					var targets []ast.Expr
					switch n := n.(type) {
					case *ast.AssignStmt:
						if n.Tok != token.DEFINE {
							targets = n.Lhs
						}
					case *ast.IncDecStmt:
						targets = []ast.Expr{n.X}
					case *ast.CallExpr:
						if id, ok := n.Fun.(*ast.Ident); ok && id.Obj == nil && (id.Name == "delete" || id.Name == "clear") && len(n.Args) > 0 {
							targets = n.Args[:1]
						}
					}
					for _, e := range targets {
						if name, ok := isPkgVar(e); ok {
							out = append(out, fmt.Sprintf("%s: %s writes package-level %s: keep it in the value that uses it", at(e), d.Name.Name, name))
						}
					}
					return true
				})
			}
		}
	}
	slices.Sort(out)
	return out
}

// importNames returns the names under which f imports any of paths.
func importNames(f *ast.File, paths ...string) map[string]bool {
	names := map[string]bool{}
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		if !slices.Contains(paths, p) {
			continue
		}
		name := p[strings.LastIndex(p, "/")+1:]
		if im.Name != nil {
			name = im.Name.Name
		}
		names[name] = true
	}
	return names
}

// syncType names the sync or sync/atomic type e is or builds (sync.Pool,
// &sync.Pool{…}, atomic.Int64, new(sync.Mutex)), "" for anything else.
func syncType(e ast.Expr, pkgs map[string]bool) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
			continue
		case *ast.UnaryExpr:
			e = x.X
			continue
		case *ast.CompositeLit:
			e = x.Type
			continue
		case *ast.CallExpr:
			if id, ok := x.Fun.(*ast.Ident); ok && id.Name == "new" && len(x.Args) == 1 {
				e = x.Args[0]
				continue
			}
			return ""
		case *ast.SelectorExpr:
			if id, ok := x.X.(*ast.Ident); ok && pkgs[id.Name] {
				return id.Name + "." + x.Sel.Name
			}
		}
		return ""
	}
}

// rootIdent is the variable an assignment target writes: x in x, x[k],
// x.f, *x, (x).
func rootIdent(e ast.Expr) *ast.Ident {
	for {
		switch x := e.(type) {
		case *ast.Ident:
			return x
		case *ast.IndexExpr:
			e = x.X
		case *ast.SelectorExpr:
			e = x.X
		case *ast.StarExpr:
			e = x.X
		case *ast.ParenExpr:
			e = x.X
		default:
			return nil
		}
	}
}

// TestNoPackageState enforces the house rule "no package-level mutable
// state" (STYLE.md) where it can be read off the syntax: no package-level
// pool, lock, once or atomic, and no function but init writing a
// package-level variable.
func TestNoPackageState(t *testing.T) {
	fset, files := parseModule(t)
	for _, v := range stateViolations(fset, files) {
		t.Error(v)
	}
}

// TestStateRuleCatchesViolations proves the state guard can fail.
func TestStateRuleCatchesViolations(t *testing.T) {
	cases := []struct {
		name, src string
		want      int
	}{
		{"a package-level pool", "package p\nimport \"sync\"\nvar pool = sync.Pool{New: func() any { return new([]byte) }}\n", 1},
		{"a package-level pool pointer", "package p\nimport \"sync\"\nvar pool = &sync.Pool{}\n", 1},
		{"a renamed atomic", "package p\nimport a \"sync/atomic\"\nvar n a.Int64\n", 1},
		{"a package-level lock", "package p\nimport \"sync\"\nvar mu sync.Mutex\n", 1},
		{"a table written at run time", "package p\nvar seen = map[string]bool{}\nfunc mark(k string) { seen[k] = true }\n", 1},
		{"a setting changed at run time", "package p\nvar debug bool\nfunc On() { debug = true }\n", 1},
		{"a counter", "package p\nvar n int\nfunc Next() int { n++; return n }\n", 1},
		{"a table emptied", "package p\nvar seen = map[string]bool{}\nfunc reset() { clear(seen) }\n", 1},
		{"a read-only table", "package p\nvar kinds = map[string]int{\"a\": 1}\nfunc kind(k string) int { return kinds[k] }\n", 0},
		{"a table built in init", "package p\nvar kinds map[string]int\nfunc init() { kinds = map[string]int{\"a\": 1} }\n", 0},
		{"a local that shadows", "package p\nvar seen = map[string]bool{}\nfunc f() { seen := map[string]bool{}; seen[\"x\"] = true; _ = seen }\n", 0},
		{"a field of a local value", "package p\nimport \"sync\"\ntype s struct{ mu sync.Mutex; n int }\nfunc f() { var v s; v.n = 1 }\n", 0},
		{"a sentinel error", "package p\nimport \"errors\"\nvar ErrX = errors.New(\"x\")\n", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, "p.go", c.src, 0)
			if err != nil {
				t.Fatal(err)
			}
			got := stateViolations(fset, []goFile{{dir: "p", name: "p/p.go", f: f}})
			if len(got) != c.want {
				t.Fatalf("violations = %q, want %d", got, c.want)
			}
		})
	}
}
