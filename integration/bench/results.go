package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Figure is one measured quantity: the summary of its runs, its same-run
// baseline and the target it is held to.
type Figure struct {
	Name string `json:"name"`
	// Group is the suite group that measured it (BENCH_ONLY selects groups).
	Group   string    `json:"group,omitempty"`
	Unit    string    `json:"unit"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Runs    int       `json:"runs"`
	Samples []float64 `json:"samples,omitempty"`
	// Baseline names the figure this one is compared with ("" if none);
	// BaselineMedian is its median in this run and Ratio = Median /
	// BaselineMedian.
	Baseline       string  `json:"baseline,omitempty"`
	BaselineMedian float64 `json:"baseline_median,omitempty"`
	Ratio          float64 `json:"ratio,omitempty"`
	// Target is the PERF.md target in words; Pass is nil when the figure
	// has no target.
	Target string `json:"target,omitempty"`
	Pass   *bool  `json:"pass,omitempty"`
	Note   string `json:"note,omitempty"`
}

// Report collects the figures of one run.
type Report struct {
	Suite    string    `json:"suite"`
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	GoVer    string    `json:"go"`
	CPUs     int       `json:"cpus"`
	Commit   string    `json:"commit,omitempty"`
	Figures  []*Figure `json:"figures"`

	mu     sync.Mutex
	byName map[string]*Figure
	group  string // the group now running, recorded on its figures
}

// SetGroup names the group whose figures are added next.
func (r *Report) SetGroup(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.group = name
}

// NewReport starts a report.
func NewReport(suite string) *Report {
	return &Report{Suite: suite, Started: time.Now(), GoVer: runtime.Version(), CPUs: runtime.NumCPU(), byName: map[string]*Figure{}}
}

// Add summarizes samples into a figure and records it. A later figure may
// name it as its baseline.
func (r *Report) Add(name, unit string, samples []float64) *Figure {
	f := &Figure{Name: name, Unit: unit, Runs: len(samples), Samples: samples}
	if len(samples) > 0 {
		s := slices.Clone(samples)
		slices.Sort(s)
		f.Median, f.Min, f.Max = median(s), s[0], s[len(s)-1]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f.Group = r.group
	if old, ok := r.byName[name]; ok {
		*old = *f
		return old
	}
	r.byName[name] = f
	r.Figures = append(r.Figures, f)
	return f
}

// Get returns a recorded figure or nil.
func (r *Report) Get(name string) *Figure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byName[name]
}

// Against sets f's baseline to the recorded figure base (no-op if absent).
func (r *Report) Against(f *Figure, base string) *Figure {
	b := r.Get(base)
	if f == nil || b == nil {
		return f
	}
	f.Baseline, f.BaselineMedian = base, b.Median
	if b.Median != 0 {
		f.Ratio = f.Median / b.Median
	}
	return f
}

// Check sets f's target and verdict.
func (f *Figure) Check(target string, pass bool) *Figure {
	if f == nil {
		return nil
	}
	f.Target = target
	f.Pass = &pass
	return f
}

// Annotate appends a note.
func (f *Figure) Annotate(format string, args ...any) *Figure {
	if f == nil {
		return nil
	}
	n := fmt.Sprintf(format, args...)
	if f.Note != "" {
		f.Note += "; "
	}
	f.Note += n
	return f
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// percentile of unsorted durations, in microseconds (p in [0,100]).
func percentile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i]) / float64(time.Microsecond)
}

func num(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func verdict(f *Figure) string {
	switch {
	case f.Pass == nil:
		return ""
	case *f.Pass:
		return "PASS"
	default:
		return "FAIL"
	}
}

// PrintTable writes the human table.
func (r *Report) PrintTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tmedian\tmin–max\truns\tbaseline\tratio\ttarget\t")
	for _, f := range r.Figures {
		base, ratio := "", ""
		if f.Baseline != "" {
			base = fmt.Sprintf("%s %s", num(f.BaselineMedian), f.Baseline)
			ratio = fmt.Sprintf("%.3g", f.Ratio)
		}
		target := f.Target
		if v := verdict(f); v != "" {
			target = v + " " + target
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s–%s\t%d\t%s\t%s\t%s\t\n", f.Name, num(f.Median), f.Unit,
			num(f.Min), num(f.Max), f.Runs, base, ratio, target)
	}
	_ = tw.Flush()
	for _, f := range r.Figures {
		if f.Note != "" {
			fmt.Fprintf(w, "  note: %s: %s\n", f.Name, f.Note)
		}
	}
}

// Markdown returns the table as GitHub markdown (for the README).
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| figure | median | min–max | runs | baseline (same run) | ratio | target |\n")
	fmt.Fprintf(&b, "| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, f := range r.Figures {
		base, ratio := "", ""
		if f.Baseline != "" {
			base = fmt.Sprintf("%s %s", num(f.BaselineMedian), f.Baseline)
			ratio = fmt.Sprintf("%.3g", f.Ratio)
		}
		target := f.Target
		if v := verdict(f); v != "" {
			target = "**" + v + "** " + target
		}
		fmt.Fprintf(&b, "| %s | %s %s | %s–%s | %d | %s | %s | %s |\n", f.Name, num(f.Median), f.Unit,
			num(f.Min), num(f.Max), f.Runs, base, ratio, target)
	}
	return b.String()
}

// Write writes the JSON report and the markdown table next to it.
func (r *Report) Write(path string) error {
	r.Duration = time.Since(r.Started).Round(time.Second).String()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	md := strings.TrimSuffix(path, filepath.Ext(path)) + ".md"
	return os.WriteFile(md, []byte(r.Markdown()), 0o644)
}
