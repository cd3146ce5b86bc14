// Command porthole-bench prints the table of a benchmark report written by
// make bench (artifacts/bench/results.json), or compares two reports
// figure by figure: each figure's same-run ratio to its baseline in the
// old and the new run, which stays comparable on a busy machine where
// absolute numbers drift.
//
//	porthole-bench artifacts/bench/results.json
//	porthole-bench -compare old.json new.json
//	porthole-bench -only browser artifacts/bench/results.json
//
// -only keeps the figures of the named groups (stack, inproc, turn,
// signaling, path, browser: BENCH_ONLY's names); figures of reports written
// before groups were recorded have none and are kept.
//
// -compare flags each figure that got worse beyond noise: by more than
// -tolerance (default 10 %) in its bad direction (up for times, sizes and
// counts; down for rates: units per second, Mbps), and with the new run's
// min–max range clear of the old one's (both scaled by their run's
// baseline when the figure has one). It exits with status 1 when any
// figure regressed.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/porthole-dev/porthole/internal/version"
)

type figure struct {
	Name           string    `json:"name"`
	Group          string    `json:"group"`
	Unit           string    `json:"unit"`
	Median         float64   `json:"median"`
	Min            float64   `json:"min"`
	Max            float64   `json:"max"`
	Runs           int       `json:"runs"`
	Baseline       string    `json:"baseline"`
	BaselineMedian float64   `json:"baseline_median"`
	Ratio          float64   `json:"ratio"`
	Target         string    `json:"target"`
	Pass           *bool     `json:"pass"`
	Samples        []float64 `json:"samples"`
}

type report struct {
	Suite   string    `json:"suite"`
	Started string    `json:"started"`
	Figures []*figure `json:"figures"`
}

func load(path string) (*report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

func verdict(f *figure) string {
	switch {
	case f.Pass == nil:
		return ""
	case *f.Pass:
		return "PASS"
	}
	return "FAIL"
}

func main() {
	compare := flag.Bool("compare", false, "compare two reports: porthole-bench -compare old.json new.json")
	only := flag.String("only", "", "comma-separated groups to show (stack,inproc,turn,signaling,path,browser; empty: all)")
	tolerance := flag.Float64("tolerance", 0.10, "with -compare: the relative change below which a figure is unchanged")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Print(version.Get("porthole-bench"))
		return
	}
	if err := run(os.Stdout, *compare, *only, *tolerance, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "porthole-bench:", err)
		os.Exit(1)
	}
}

// keep filters r's figures to the comma-separated groups (empty: all).
func keep(r *report, groups string) {
	if groups == "" {
		return
	}
	want := map[string]bool{}
	for _, g := range strings.Split(groups, ",") {
		want[strings.TrimSpace(g)] = true
	}
	var out []*figure
	for _, f := range r.Figures {
		if f.Group == "" || want[f.Group] {
			out = append(out, f)
		}
	}
	r.Figures = out
}

// errRegressed is run's error when -compare found a regression.
var errRegressed = errors.New("figures regressed beyond noise")

func run(w io.Writer, compare bool, only string, tolerance float64, args []string) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	if !compare {
		if len(args) != 1 {
			return fmt.Errorf("usage: porthole-bench results.json | -compare old.json new.json")
		}
		r, err := load(args[0])
		if err != nil {
			return err
		}
		keep(r, only)
		fmt.Fprintf(tw, "figure\tmedian\tmin–max\truns\tbaseline\tratio\ttarget\t\n")
		for _, f := range r.Figures {
			ratio := ""
			if f.Baseline != "" {
				ratio = fmt.Sprintf("%.3g", f.Ratio)
			}
			fmt.Fprintf(tw, "%s\t%.4g %s\t%.4g–%.4g\t%d\t%s\t%s\t%s %s\t\n", f.Name, f.Median, f.Unit, f.Min, f.Max, f.Runs,
				f.Baseline, ratio, verdict(f), f.Target)
		}
		return nil
	}
	if len(args) != 2 {
		return fmt.Errorf("usage: porthole-bench -compare old.json new.json")
	}
	a, err := load(args[0])
	if err != nil {
		return err
	}
	b, err := load(args[1])
	if err != nil {
		return err
	}
	keep(b, only)
	old := map[string]*figure{}
	for _, f := range a.Figures {
		old[f.Name] = f
	}
	regressed := 0
	fmt.Fprintf(tw, "figure\told median\tnew median\told ratio\tnew ratio\tnew/old\tchange\tnew verdict\t\n")
	for _, f := range b.Figures {
		o := old[f.Name]
		if o == nil {
			fmt.Fprintf(tw, "%s\t—\t%.4g %s\t—\t%s\t—\tnew\t%s\t\n", f.Name, f.Median, f.Unit, ratio(f), verdict(f))
			continue
		}
		d := diff(o, f, tolerance)
		if d.regressed {
			regressed++
		}
		fmt.Fprintf(tw, "%s\t%.4g\t%.4g %s\t%s\t%s\t%s\t%s\t%s\t\n", f.Name, o.Median, f.Median, f.Unit, ratio(o), ratio(f), d.change, d.word, verdict(f))
	}
	tw.Flush()
	if regressed > 0 {
		fmt.Fprintf(w, "%d of %d figures regressed beyond noise (tolerance %.0f %%, ranges apart)\n", regressed, len(b.Figures), tolerance*100)
		return fmt.Errorf("%d %w", regressed, errRegressed)
	}
	fmt.Fprintf(w, "no figure regressed beyond noise (tolerance %.0f %%)\n", tolerance*100)
	return nil
}

// ratio is a figure's same-run ratio to its baseline, "—" without one.
func ratio(f *figure) string {
	if f.Baseline == "" && f.Ratio == 0 {
		return "—"
	}
	return fmt.Sprintf("%.3g", f.Ratio)
}

// higherIsBetter reports whether a figure in unit improves upwards: rates
// (MB/s, Mbps, req/s, pkt/s). Times, sizes, shares and counts improve
// downwards.
func higherIsBetter(unit string) bool {
	return strings.HasSuffix(unit, "/s") || strings.HasSuffix(unit, "ps")
}

// delta is one figure's change between two runs.
type delta struct {
	change    string // new/old of the compared quantity
	word      string // "regressed", "improved", "~" (within noise) or "—"
	regressed bool
}

// diff compares a figure of two runs by its same-run ratio to its baseline
// when both runs have one (absolute numbers drift on a busy machine; the
// ratio mostly does not), else by its median. A change is a regression
// only beyond tolerance in the figure's bad direction and with the two
// runs' ranges apart.
func diff(o, f *figure, tolerance float64) delta {
	scale := func(x *figure) (mid, lo, hi float64) {
		if x.BaselineMedian != 0 && x.Ratio != 0 {
			return x.Ratio, x.Min / x.BaselineMedian, x.Max / x.BaselineMedian
		}
		return x.Median, x.Min, x.Max
	}
	byRatio := o.Ratio != 0 && f.Ratio != 0 && o.BaselineMedian != 0 && f.BaselineMedian != 0
	var om, olo, ohi, nm, nlo, nhi float64
	if byRatio {
		om, olo, ohi = scale(o)
		nm, nlo, nhi = scale(f)
	} else {
		om, olo, ohi = o.Median, o.Min, o.Max
		nm, nlo, nhi = f.Median, f.Min, f.Max
	}
	if om == 0 {
		return delta{change: "—", word: "—"}
	}
	r := nm / om
	change := fmt.Sprintf("%.3g", r)
	if !byRatio {
		change += " (medians)"
	}
	worse, better := r > 1+tolerance, r < 1/(1+tolerance)
	apart := nlo > ohi // the new run's range above the old one's
	if higherIsBetter(f.Unit) {
		worse, better = better, worse
		apart = nhi < olo
	}
	switch {
	case worse && apart:
		return delta{change: change, word: "REGRESSED", regressed: true}
	case worse:
		return delta{change: change, word: "worse, within noise"}
	case better:
		return delta{change: change, word: "improved"}
	}
	return delta{change: change, word: "~"}
}
