package archtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/porthole-dev/porthole"

// pkg is what the guards need of one package, read from `go list`.
type pkg struct {
	path string   // module-relative import path, e.g. "signaling/hub"
	doc  string   // the package's doc synopsis
	deps []string // every transitive dependency, full import paths
}

// listPackages runs `go list` over the whole module once. Test files'
// imports are left out on purpose: a test may reach across layers (the
// integration tests do), a shipped binary may not.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	const format = "{{.ImportPath}}\t{{.Doc}}\t{{join .Deps \" \"}}"
	cmd := exec.Command("go", "list", "-f", format, module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), "\t", 3)
		if len(fields) != 3 {
			t.Fatalf("go list: unexpected line %q", sc.Text())
		}
		pkgs = append(pkgs, pkg{
			path: strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/"),
			doc:  fields[1],
			deps: strings.Fields(fields[2]),
		})
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages: is the test running inside the module?", len(pkgs))
	}
	return pkgs
}

// rule forbids the packages under from to depend on anything matching one
// of the forbidden prefixes (full import paths; "std-only" means anything
// that is not the standard library or the package's own subtree).
type rule struct {
	from      string // module-relative prefix, "" for the whole module
	forbidden []string
	stdOnly   bool
	alsoStd   []string // with stdOnly: prefixes counted as the standard library
	why       string
}

var rules = []rule{
	{from: "signaling", forbidden: []string{"github.com/pion/", module + "/agent", module + "/turnserver", module + "/integration"},
		why: "signaling carries SDP and candidates; it never speaks WebRTC or links site or relay code"},
	{from: "turnserver", forbidden: []string{module + "/signaling", module + "/agent", module + "/web", module + "/integration"},
		why: "the relay shares only proto and internal with the rest"},
	{from: "agent", forbidden: []string{module + "/signaling", module + "/turnserver", module + "/web", module + "/integration"},
		why: "agent and CLI talk to signaling over the wire only"},
	{from: "agent/cmd/porthole", forbidden: []string{module + "/agent/daemon", module + "/agent/deviceproxy", module + "/agent/deviceid", module + "/agent/enroll", module + "/agent/accesslog"},
		why: "the technician's CLI must not link the site daemon"},
	{from: "agent/negotiate", forbidden: []string{module + "/agent"},
		why: "negotiation runs offer/answer over proto messages; the peer connection and its settings come from agent/peerconn"},
	{from: "internal", forbidden: []string{module + "/signaling", module + "/agent", module + "/turnserver", module + "/web", module + "/integration"},
		why: "internal packages are shared leaves"},
	{from: "web", forbidden: []string{module + "/"},
		why: "web only embeds the browser code"},
	{from: "signaling/cluster", forbidden: []string{module + "/signaling/server", module + "/signaling/store", module + "/signaling/accounts", module + "/signaling/sso", module + "/signaling/jobs"},
		why: "cross-node routing holds the hub and the bus, never the HTTP layer or the store"},
	{from: "signaling/hub", forbidden: []string{module + "/signaling/server", module + "/signaling/cluster", module + "/signaling/bus"},
		why: "the hub knows one node; routing across nodes is layered on it"},
	// go-json-experiment/json is the reference implementation of Go's
	// encoding/json/v2 (in the standard library behind GOEXPERIMENT=jsonv2
	// as of Go 1.26): the tunnel's payloads decode with it, strict and
	// without reflection per field. It moves to encoding/json/v2 when that
	// is no longer an experiment.
	{from: "proto", stdOnly: true, alsoStd: []string{"github.com/go-json-experiment/json"},
		why: "wire types build with the standard library alone (and encoding/json/v2's reference implementation)"},
}

func (r rule) applies(path string) bool {
	return r.from == "" || path == r.from || strings.HasPrefix(path, r.from+"/")
}

// isStd reports whether an import path belongs to the standard library:
// its first element has no dot (Go's own convention for std paths).
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// violations lists every dependency that breaks a rule, one line each.
func violations(pkgs []pkg, rules []rule) []string {
	var out []string
	for _, p := range pkgs {
		for _, r := range rules {
			if !r.applies(p.path) {
				continue
			}
			own := module + "/" + r.from
			var hits []string
			for _, d := range p.deps {
				bad := false
				if r.stdOnly {
					bad = !isStd(d) && d != own && !strings.HasPrefix(d, own+"/") &&
						!slices.ContainsFunc(r.alsoStd, func(a string) bool { return d == a || strings.HasPrefix(d, a+"/") })
				}
				for _, f := range r.forbidden {
					if strings.HasPrefix(d, f) && d != own && !strings.HasPrefix(d, own+"/") {
						bad = true
					}
				}
				if bad {
					hits = append(hits, d)
				}
			}
			if len(hits) > 0 {
				// Transitive closures are long: name the first few.
				more := ""
				if len(hits) > 3 {
					more = fmt.Sprintf(" and %d more", len(hits)-3)
					hits = hits[:3]
				}
				out = append(out, fmt.Sprintf("%s depends on %s%s: %s", p.path, strings.Join(hits, ", "), more, r.why))
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.doc) == "" {
			t.Errorf("package %s has no doc comment: say in a doc.go what it is for", p.path)
		}
	}
}

func TestDependencies(t *testing.T) {
	for _, v := range violations(listPackages(t), rules) {
		t.Error(v)
	}
}

// TestRulesCatchViolations proves the guard can fail: each case is a
// deliberate breach of one rule.
func TestRulesCatchViolations(t *testing.T) {
	cases := []struct {
		name string
		pkg  pkg
		want int
	}{
		{"signaling imports pion", pkg{path: "signaling/hub", deps: []string{"github.com/pion/webrtc/v4"}}, 1},
		{"signaling imports agent", pkg{path: "signaling/server", deps: []string{module + "/agent/tunnel"}}, 1},
		{"CLI links the daemon", pkg{path: "agent/cmd/porthole", deps: []string{module + "/agent/daemon"}}, 1},
		{"proto imports a module", pkg{path: "proto", deps: []string{"github.com/gorilla/websocket", "encoding/json"}}, 1},
		{"proto's own subpackage is fine", pkg{path: "proto", deps: []string{module + "/proto/wire", "fmt"}}, 0},
		{"proto may use json/v2's reference implementation", pkg{path: "proto", deps: []string{"github.com/go-json-experiment/json", "github.com/go-json-experiment/json/jsontext"}}, 0},
		{"a look-alike of it is no exception", pkg{path: "proto", deps: []string{"github.com/go-json-experiment/jsonx"}}, 1},
		{"agent may import proto", pkg{path: "agent/tunnel", deps: []string{module + "/proto", "github.com/pion/webrtc/v4"}}, 0},
		{"cluster routing reaches into the HTTP layer", pkg{path: "signaling/cluster", deps: []string{module + "/signaling/server"}}, 1},
		{"the hub routes across nodes itself", pkg{path: "signaling/hub", deps: []string{module + "/signaling/cluster"}}, 1},
		{"signalingx is not signaling", pkg{path: "signalingx", deps: []string{"github.com/pion/ice/v4"}}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := violations([]pkg{c.pkg}, rules)
			if len(got) != c.want {
				t.Fatalf("violations = %q, want %d", got, c.want)
			}
		})
	}
}
