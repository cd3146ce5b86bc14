package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
)

// TestEveryBinaryVersionAndHelp builds every command as the Makefile does
// (version and commit stamped with -ldflags) and checks that --version
// names them with the Go and pion versions, and that --help (and the
// subcommands' help) exits 0.
func TestEveryBinaryVersionAndHelp(t *testing.T) {
	// The stack's binaries, the two other commands, and porthole once
	// more as the Makefile stamps it.
	bins := stack.Build(t)
	dir := t.TempDir()
	const ver, commit = "v9.9.9-test", "0123456789abcdef0123456789abcdef01234567"
	root := testenv.RepoRoot(t)
	ld := "-X github.com/porthole-dev/porthole/internal/version.Version=" + ver + " -X github.com/porthole-dev/porthole/internal/version.Commit=" + commit
	for _, args := range [][]string{
		{"build", "-o", dir + "/", "./integration/cmd/porthole-demo", "./integration/cmd/porthole-bench"},
		{"build", "-ldflags", ld, "-o", filepath.Join(dir, "porthole-stamped"), "./agent/cmd/porthole"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", args, err, out)
		}
	}
	path := map[string]string{"porthole-demo": filepath.Join(dir, "porthole-demo"), "porthole-bench": filepath.Join(dir, "porthole-bench"),
		"porthole-stamped": filepath.Join(dir, "porthole-stamped")}
	for name, p := range bins {
		path[name] = p
	}
	run := func(bin string, args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, path[bin], args...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s %v: %v", bin, args, err)
		}
		return string(out), 0
	}
	if out, code := run("porthole-stamped", "--version"); code != 0 || !strings.HasPrefix(out, "porthole "+ver+" (commit 0123456789ab)\ngo1.") {
		t.Errorf("the stamped porthole --version: exit %d\n%s", code, out)
	}
	for _, bin := range []string{"porthole", "porthole-agent", "porthole-signaling", "porthole-turn", "porthole-demo", "porthole-demo-device", "porthole-bench"} {
		out, code := run(bin, "--version")
		if code != 0 || !strings.HasPrefix(out, bin+" ") || !strings.Contains(out, "\ngo1.") {
			t.Errorf("%s --version: exit %d\n%s", bin, code, out)
		}
		if (bin == "porthole" || bin == "porthole-agent" || bin == "porthole-turn") && !strings.Contains(out, "pion/webrtc/v4 v4.") && !strings.Contains(out, "pion/turn/v4 v4.") {
			t.Errorf("%s --version names no pion version:\n%s", bin, out)
		}
		if out, code := run(bin, "--help"); code != 0 || !strings.Contains(strings.ToLower(out), "usage") {
			t.Errorf("%s --help: exit %d\n%.300s", bin, code, out)
		}
	}
	for _, args := range [][]string{
		{"porthole", "help"}, {"porthole", "help", "ssh"}, {"porthole", "login", "--help"}, {"porthole", "version"},
		{"porthole-agent", "enroll", "--help"}, {"porthole-agent", "trust", "--help"}, {"porthole-agent", "run", "--help"},
		{"porthole-signaling", "admin", "--help"}, {"porthole-signaling", "audit", "--help"},
	} {
		if out, code := run(args[0], args[1:]...); code != 0 {
			t.Errorf("%v: exit %d\n%.300s", args, code, out)
		}
	}
}

// TestCLICompletion loads `porthole completion` into real bash, fish and
// zsh: commands and flags complete, and device IDs come from the server
// with the user's token.
func TestCLICompletion(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	env := append(os.Environ(), "PATH="+filepath.Dir(s.Bin["porthole"])+":"+os.Getenv("PATH"),
		"PORTHOLE_SERVER="+s.SignalingURL, "PORTHOLE_TOKEN="+s.TechToken, "HOME="+t.TempDir())
	sh := func(bin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
		}
		return string(out)
	}
	bash := testenv.NeedBinary(t, "bash")
	complete := func(words ...string) []string {
		t.Helper()
		script := `source <(porthole completion bash) && COMP_WORDS=(` + quoteWords(words) + `) && COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && _porthole && printf '%s\n' "${COMPREPLY[@]}"`
		return strings.Fields(sh(bash, "-c", script))
	}
	for _, tc := range []struct {
		words []string
		want  string
		not   string
	}{
		{[]string{"porthole", "h"}, "http", "devices"},
		{[]string{"porthole", "http", ""}, stack.DeviceID, ""},
		{[]string{"porthole", "--server", "x", "ssh", "pr"}, stack.DeviceID, ""},
		{[]string{"porthole", "forward", "--st"}, "--stdio", "--json"},
		{[]string{"porthole", "devices", "--"}, "--json", "--stdio"},
		{[]string{"porthole", "completion", ""}, "fish", ""},
	} {
		got := complete(tc.words...)
		if !contains(got, tc.want) || (tc.not != "" && contains(got, tc.not)) {
			t.Errorf("bash %q: %v (want %q, not %q)", tc.words, got, tc.want, tc.not)
		}
	}
	if fish, err := exec.LookPath("fish"); err == nil || testenv.RequireAll() {
		testenv.NeedBinary(t, "fish")
		for _, tc := range []struct{ line, want string }{
			{"porthole http ", stack.DeviceID}, {"porthole forward --st", "--stdio"}, {"porthole ss", "ssh"},
		} {
			out := sh(fish, "-c", "porthole completion fish | source; complete -C '"+tc.line+"'")
			if !contains(strings.Fields(out), tc.want) {
				t.Errorf("fish %q:\n%s(want %q)", tc.line, out, tc.want)
			}
		}
	} else {
		t.Log("fish not installed: its completion is not exercised")
	}
	if zsh, err := exec.LookPath("zsh"); err == nil || testenv.RequireAll() {
		testenv.NeedBinary(t, "zsh")
		out := sh(zsh, "-fc", `autoload -U compinit && compinit -u -D && source <(porthole completion zsh) && print -r -- ${_comps[porthole]}`)
		if strings.TrimSpace(out) != "_porthole" {
			t.Errorf("zsh: completion not registered: %q", out)
		}
	} else {
		t.Log("zsh not installed: its completion is not exercised")
	}
}

func quoteWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + w + "'"
	}
	return strings.Join(q, " ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
