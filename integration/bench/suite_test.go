package bench

import (
	"flag"
	"os"
	"runtime/debug"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/stack"
)

var (
	suiteFlag = flag.String("suite", "", "run the benchmark suite: quick or full (empty: a smoke run)")
	outFlag   = flag.String("out", "", "write the JSON report here (and a .md table beside it)")
	onlyFlag  = flag.String("only", "", "comma-separated groups to run: stack,inproc,turn,signaling,path,browser,pageload,bulk,fallback (empty: all)")
	// For iterating on one case of the turn group (issue 22 item 4): the
	// 200-session case alone, several times, without the other counts.
	turnSessionsFlag = flag.String("turn-sessions", "", "comma-separated turnutils_uclient session counts of the turn group (empty: the suite's)")
	turnRunsFlag     = flag.Int("turn-runs", 0, "turnutils_uclient runs per server and session count in the turn group (0: the suite's)")
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(RelayHelperEnv); spec != "" {
		os.Exit(RunRelayHelper(spec))
	}
	code := m.Run()
	stack.RemoveBuilt()
	os.Exit(code)
}

// TestSuite runs the benchmark suite selected by -suite, or a smoke run
// that only proves the scenarios work (part of make test, well under 10 s).
func TestSuite(t *testing.T) {
	cfg := Smoke
	switch *suiteFlag {
	case "":
		if testing.Short() {
			t.Skip("smoke run skipped in -short mode")
		}
	case "quick":
		cfg = Quick
	case "full":
		cfg = Full
	default:
		t.Fatalf("-suite %q: want quick or full", *suiteFlag)
	}
	if err := cfg.overrideTURN(*turnSessionsFlag, *turnRunsFlag); err != nil {
		t.Fatal(err)
	}
	r := NewReport(cfg.Name)
	if os.Getenv("GOGC") == "" {
		// This process plays the porthole CLI, which runs with GOGC=400
		// (agent/cmd/porthole); the agent binary does the same.
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	defer func() {
		r.PrintTable(os.Stdout)
		if *outFlag != "" {
			if err := r.Write(*outFlag); err != nil {
				t.Errorf("write report: %v", err)
			}
		}
	}()
	groups := selected(*onlyFlag)
	run := func(name string, fn func(t *testing.T)) {
		if !groups(name) {
			return
		}
		t0 := time.Now()
		r.SetGroup(name)
		t.Run(name, fn)
		t.Logf("group %s took %v", name, time.Since(t0).Round(time.Millisecond))
	}
	if cfg.Name == "smoke" {
		// In-process only: no binaries to build, no processes.
		run("inproc", func(t *testing.T) { SmokeFigures(t, r) })
		return
	}
	run("stack", func(t *testing.T) { StackFigures(t, r, cfg) })
	run("inproc", func(t *testing.T) { InProcessFigures(t, r, cfg) })
	for _, g := range extraGroups {
		run(g.name, func(t *testing.T) { g.fn(t, r, cfg) })
	}
}

type group struct {
	name string
	fn   func(testing.TB, *Report, Config)
}

var extraGroups []group

func init() {
	extraGroups = append(extraGroups, group{"turn", TURNFigures}, group{"signaling", SignalingFigures}, group{"path", PathFigures}, group{"browser", BrowserFigures}, group{"pageload", PageLoadFigures}, group{"bulk", BulkBrowserFigures}, group{"fallback", FallbackFigures})
}
