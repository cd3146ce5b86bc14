package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Shell completion: the scripts are generated from the command table, so
// a new command or flag completes without touching them. Device IDs come
// from `porthole __complete devices`, which asks the server with the
// user's own token and prints nothing on any error.

func defineCompletion(*flag.FlagSet) func(context.Context, *app, []string) error {
	return func(_ context.Context, a *app, args []string) error {
		if len(args) != 1 {
			return usageErrorf("completion", "usage: porthole completion bash|zsh|fish")
		}
		globals, cmds := completionSpec()
		switch args[0] {
		case "bash":
			writeBash(a.stdout, globals, cmds)
		case "zsh":
			writeZsh(a.stdout, globals, cmds)
		case "fish":
			writeFish(a.stdout, globals, cmds)
		default:
			return usageErrorf("completion", "no completion for %q: bash, zsh or fish", args[0])
		}
		return nil
	}
}

// compCommand is what completion knows of a command.
type compCommand struct {
	name, summary string
	flags         []compFlag
	device        bool // first argument is a device ID
	words         []string
}

type compFlag struct {
	name, usage string
	value       bool // takes a value
}

func flagsOf(fs *flag.FlagSet) []compFlag {
	var out []compFlag
	fs.VisitAll(func(f *flag.Flag) {
		bf, isBool := f.Value.(interface{ IsBoolFlag() bool })
		_, usage := flag.UnquoteUsage(f)
		out = append(out, compFlag{name: f.Name, usage: usage, value: !(isBool && bf.IsBoolFlag())})
	})
	return out
}

func completionSpec() (globals []compFlag, cmds []compCommand) {
	gfs := flag.NewFlagSet("porthole", flag.ContinueOnError)
	(&app{}).globalFlags(gfs)
	gfs.Bool("version", false, "print the version and exit")
	gfs.Bool("help", false, "show help")
	globals = flagsOf(gfs)
	for _, c := range commands() {
		if c.hidden {
			continue
		}
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.define(fs)
		fs.Bool("help", false, "show help")
		cc := compCommand{name: c.name, summary: c.summary, flags: flagsOf(fs), device: strings.HasPrefix(c.args, "DEVICE")}
		switch c.name {
		case "completion":
			cc.words = []string{"bash", "zsh", "fish"}
		case "help":
			for _, o := range commands() {
				if !o.hidden {
					cc.words = append(cc.words, o.name)
				}
			}
		}
		cmds = append(cmds, cc)
	}
	return globals, cmds
}

func dashed(f compFlag) string {
	if len(f.name) == 1 {
		return "-" + f.name
	}
	return "--" + f.name
}

func writeBash(w io.Writer, globals []compFlag, cmds []compCommand) {
	var names, gflags, valued []string
	for _, f := range globals {
		gflags = append(gflags, dashed(f))
		if f.value {
			valued = append(valued, dashed(f))
		}
	}
	var cases strings.Builder
	for _, c := range cmds {
		names = append(names, c.name)
		var fl []string
		for _, f := range c.flags {
			fl = append(fl, dashed(f))
			if f.value && !slices.Contains(valued, dashed(f)) {
				valued = append(valued, dashed(f))
			}
		}
		fmt.Fprintf(&cases, "    %s) flags=%q; device=%v; words=%q;;\n", c.name, strings.Join(fl, " "), c.device, strings.Join(c.words, " "))
	}
	fmt.Fprintf(w, `# bash completion for porthole. Load it with:
#   source <(porthole completion bash)
# or save it as ~/.local/share/bash-completion/completions/porthole
_porthole() {
  local cur=${COMP_WORDS[COMP_CWORD]} cmd="" npos=0 i w
  local globals=%q valued=%q
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    if [[ " $valued " == *" $w "* ]]; then ((i++)); continue; fi
    [[ $w == -* ]] && continue
    if [[ -z $cmd ]]; then cmd=$w; else ((npos++)); fi
  done
  if [[ " $valued " == *" ${COMP_WORDS[COMP_CWORD-1]} "* ]]; then
    COMPREPLY=(); return
  fi
  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "$globals" -- "$cur"))
    else
      COMPREPLY=($(compgen -W %q -- "$cur"))
    fi
    return
  fi
  local flags="" device=false words=""
  case $cmd in
%s  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags $globals" -- "$cur"))
  elif [[ $device == true && $npos -eq 0 ]]; then
    COMPREPLY=($(compgen -W "$(porthole __complete devices 2>/dev/null)" -- "$cur"))
  elif [[ -n $words && $npos -eq 0 ]]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  fi
}
complete -F _porthole porthole
`, strings.Join(gflags, " "), strings.Join(valued, " "), strings.Join(names, " "), cases.String())
}

// zshQuote escapes a description for _describe and _arguments.
func zshQuote(s string) string {
	r := strings.NewReplacer(`'`, `'\''`, `:`, `\:`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

func writeZsh(w io.Writer, globals []compFlag, cmds []compCommand) {
	fmt.Fprint(w, `#compdef porthole
# zsh completion for porthole. Load it with:
#   source <(porthole completion zsh)
# or save it as _porthole in a directory of $fpath.
_porthole_devices() {
  local -a ids
  ids=(${(f)"$(porthole __complete devices 2>/dev/null)"})
  _describe 'device' ids
}
_porthole() {
  local -a cmds globals
  cmds=(
`)
	for _, c := range cmds {
		fmt.Fprintf(w, "    '%s:%s'\n", c.name, zshQuote(c.summary))
	}
	fmt.Fprint(w, "  )\n  globals=(\n")
	for _, f := range globals {
		arg := ""
		if f.value {
			arg = ":value:"
		}
		fmt.Fprintf(w, "    '%s[%s]%s'\n", dashed(f), zshQuote(f.usage), arg)
	}
	fmt.Fprint(w, `  )
  local curcontext=$curcontext state line
  _arguments -C $globals '1: :->cmd' '*:: :->args'
  case $state in
    cmd) _describe 'command' cmds ;;
    args)
      case $words[1] in
`)
	for _, c := range cmds {
		var specs []string
		for _, f := range c.flags {
			arg := ""
			if f.value {
				arg = ":value:"
			}
			specs = append(specs, fmt.Sprintf("'%s[%s]%s'", dashed(f), zshQuote(f.usage), arg))
		}
		switch {
		case c.device:
			specs = append(specs, "'1:device:_porthole_devices'", "'*::argument:_default'")
		case len(c.words) > 0:
			specs = append(specs, fmt.Sprintf("'1:argument:(%s)'", strings.Join(c.words, " ")))
		}
		if len(specs) == 0 {
			continue
		}
		fmt.Fprintf(w, "        %s) _arguments %s $globals ;;\n", c.name, strings.Join(specs, " "))
	}
	fmt.Fprint(w, `      esac ;;
  esac
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _porthole "$@"
else
  compdef _porthole porthole
fi
`)
}

// fishQuote quotes s for fish.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func writeFish(w io.Writer, globals []compFlag, cmds []compCommand) {
	var names []string
	for _, c := range cmds {
		names = append(names, c.name)
	}
	fmt.Fprintf(w, `# fish completion for porthole. Load it with:
#   porthole completion fish | source
# or save it as ~/.config/fish/completions/porthole.fish
complete -c porthole -f
function __porthole_no_command
    not __fish_seen_subcommand_from %s
end
function __porthole_first_arg_of
    set -l words (commandline -opc)
    set -l seen 0
    for w in $words[2..-1]
        if string match -q -- '-*' $w
            continue
        end
        set seen (math $seen + 1)
    end
    contains -- $words[2..-1] $argv; and test $seen -eq 1
end
`, strings.Join(names, " "))
	for _, f := range globals {
		fmt.Fprintf(w, "complete -c porthole %s -d %s\n", fishFlag(f), fishQuote(f.usage))
	}
	for _, c := range cmds {
		fmt.Fprintf(w, "complete -c porthole -n __porthole_no_command -a %s -d %s\n", c.name, fishQuote(c.summary))
		for _, f := range c.flags {
			fmt.Fprintf(w, "complete -c porthole -n '__fish_seen_subcommand_from %s' %s -d %s\n", c.name, fishFlag(f), fishQuote(f.usage))
		}
		switch {
		case c.device:
			fmt.Fprintf(w, "complete -c porthole -n '__porthole_first_arg_of %s' -a '(porthole __complete devices 2>/dev/null)'\n", c.name)
		case len(c.words) > 0:
			fmt.Fprintf(w, "complete -c porthole -n '__porthole_first_arg_of %s' -a %s\n", c.name, fishQuote(strings.Join(c.words, " ")))
		}
	}
}

func fishFlag(f compFlag) string {
	s := "-l " + f.name
	if len(f.name) == 1 {
		s = "-s " + f.name
	}
	if f.value {
		s += " -r"
	}
	return s
}
