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
package main

import (
	"encoding/json"
	"flag"
	"fmt"
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
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Print(version.Get("porthole-bench"))
		return
	}
	if err := run(*compare, *only, flag.Args()); err != nil {
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

func run(compare bool, only string, args []string) error {
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
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
	fmt.Fprintf(tw, "figure\told median\tnew median\told ratio\tnew ratio\tnew/old ratio\tnew verdict\t\n")
	for _, f := range b.Figures {
		o := old[f.Name]
		if o == nil {
			fmt.Fprintf(tw, "%s\t—\t%.4g %s\t—\t%.3g\t—\t%s\t\n", f.Name, f.Median, f.Unit, f.Ratio, verdict(f))
			continue
		}
		change := "—"
		if o.Ratio != 0 && f.Ratio != 0 {
			change = fmt.Sprintf("%.3g", f.Ratio/o.Ratio)
		} else if o.Median != 0 {
			change = fmt.Sprintf("%.3g (medians)", f.Median/o.Median)
		}
		fmt.Fprintf(tw, "%s\t%.4g\t%.4g %s\t%.3g\t%.3g\t%s\t%s\t\n", f.Name, o.Median, f.Median, f.Unit, o.Ratio, f.Ratio, change, verdict(f))
	}
	return nil
}
