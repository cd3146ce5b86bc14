// Package settings gives a daemon's flags two more sources with the same
// names: environment variables (PREFIX_NAME, upper case, dashes as
// underscores) and a configuration file of "name value" lines, and says
// back where each value came from, secrets redacted.
//
// A setting is defined once, as a flag; the environment and the file are
// derived from that definition by github.com/peterbourgon/ff/v3, so there
// is no second list of names to keep in step. Precedence is the command
// line, then the environment, then the file, then the flag's default. A
// line in the file that names no flag is refused (a typo is not silently
// ignored), as is a file that cannot be read.
package settings

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/peterbourgon/ff/v3"
)

// ConfigFlag is the name of the flag that names the configuration file.
const ConfigFlag = "config"

// Source says where a setting's value came from.
type Source string

// Sources, in order of precedence.
const (
	FromFlag    Source = "flag"
	FromEnv     Source = "env"
	FromFile    Source = "file"
	FromDefault Source = "default"
)

// Options tune Parse.
type Options struct {
	// EnvPrefix is the environment variables' prefix without the
	// underscore, e.g. "PORTHOLE".
	EnvPrefix string
	// Secret reports whether the named setting holds a secret, which
	// Report never prints.
	Secret func(name string) bool
	// IgnoreUnknown accepts file lines that name no flag of the set: for
	// a subcommand that reads the daemon's file but only some of its
	// settings.
	IgnoreUnknown bool
}

// Parsed is the result of Parse.
type Parsed struct {
	fs   *flag.FlagSet
	opt  Options
	args map[string]bool // names given on the command line
	// File is the configuration file read, "" if none.
	File string
}

// EnvName is the environment variable of setting name.
func EnvName(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse parses args into fs, then fills what they left unset from the
// environment and then from the file named by the --config setting
// (which Parse defines on fs if it is not defined yet; it may come from
// the environment, PREFIX_CONFIG, like any other setting).
func Parse(fs *flag.FlagSet, args []string, opt Options) (*Parsed, error) {
	if fs.Lookup(ConfigFlag) == nil {
		fs.String(ConfigFlag, "", "configuration file: \"name value\" lines with these flags' names")
	}
	p := &Parsed{fs: fs, opt: opt, args: commandLine(fs, args)}
	err := ff.Parse(fs, args,
		ff.WithEnvVarPrefix(opt.EnvPrefix),
		ff.WithConfigFileFlag(ConfigFlag),
		ff.WithConfigFileParser(ff.PlainParser),
		ff.WithIgnoreUndefined(opt.IgnoreUnknown),
	)
	if err != nil {
		return nil, err
	}
	p.File = fs.Lookup(ConfigFlag).Value.String()
	return p, nil
}

// commandLine reports which of fs's flags args sets, without setting
// them: args are parsed into a twin of fs whose values only record.
func commandLine(fs *flag.FlagSet, args []string) map[string]bool {
	twin := flag.NewFlagSet("", flag.ContinueOnError)
	twin.SetOutput(io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		twin.Var(&recorder{boolean: ok && b.IsBoolFlag()}, f.Name, "")
	})
	_ = twin.Parse(args) // errors are ff.Parse's to report
	seen := map[string]bool{}
	twin.Visit(func(f *flag.Flag) { seen[f.Name] = true })
	return seen
}

type recorder struct{ boolean bool }

func (r *recorder) String() string   { return "" }
func (r *recorder) Set(string) error { return nil }
func (r *recorder) IsBoolFlag() bool { return r.boolean }

func (p *Parsed) env(name string) bool {
	return os.Getenv(EnvName(p.opt.EnvPrefix, name)) != ""
}

// Source says where the named setting's value came from.
func (p *Parsed) Source(name string) Source {
	switch {
	case p.args[name]:
		return FromFlag
	case p.env(name):
		return FromEnv
	}
	set := false
	p.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	if set {
		return FromFile
	}
	return FromDefault
}

// Setting is one line of Report.
type Setting struct {
	Name, Value string
	Source      Source
	Secret      bool
}

// Settings lists every setting with its value (a secret's value as
// "(secret, N bytes)" or "(not set)") and source, sorted by name.
func (p *Parsed) Settings() []Setting {
	var out []Setting
	p.fs.VisitAll(func(f *flag.Flag) {
		s := Setting{Name: f.Name, Value: f.Value.String(), Source: p.Source(f.Name)}
		if p.opt.Secret != nil && p.opt.Secret(f.Name) {
			s.Secret = true
			if s.Value != "" {
				s.Value = "(secret)"
			}
		}
		out = append(out, s)
	})
	slices.SortFunc(out, func(a, b Setting) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Report writes Settings as aligned "name value (source)" lines in the
// file's own format, so the output, less its comments, is a valid file.
func (p *Parsed) Report(w io.Writer) {
	for _, s := range p.Settings() {
		if s.Value == "" && s.Source == FromDefault {
			fmt.Fprintf(w, "# %-24s (not set)\n", s.Name)
			continue
		}
		src := string(s.Source)
		if s.Source == FromEnv {
			src = "env " + EnvName(p.opt.EnvPrefix, s.Name)
		}
		if s.Secret {
			// Commented out: the output stays a valid file without it.
			fmt.Fprintf(w, "# %-24s %s  # %s\n", s.Name, s.Value, src)
			continue
		}
		fmt.Fprintf(w, "%-26s %s  # %s\n", s.Name, s.Value, src)
	}
}
