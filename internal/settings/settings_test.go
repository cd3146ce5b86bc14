package settings

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func newSet() (*flag.FlagSet, *string, *string, *bool, *list) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "")
	secret := fs.String("turn-secret", "", "")
	dev := fs.Bool("insecure-dev-tokens", false, "")
	var urls list
	fs.Var(&urls, "ice-url", "")
	return fs, listen, secret, dev, &urls
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "signaling.conf")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	file := writeFile(t, `# comment
listen 0.0.0.0:443
turn-secret from-file
ice-url stun:a:3478
ice-url turn:b:3478
insecure-dev-tokens
`)
	for _, tc := range []struct {
		name       string
		args       []string
		env        map[string]string
		wantListen string
		wantSecret string
		wantURLs   string
		wantSrc    map[string]Source
	}{
		{name: "file fills everything", args: []string{"--config", file},
			wantListen: "0.0.0.0:443", wantSecret: "from-file", wantURLs: "stun:a:3478,turn:b:3478",
			wantSrc: map[string]Source{"listen": FromFile, "turn-secret": FromFile, "ice-url": FromFile, "config": FromFlag}},
		{name: "env beats file", args: []string{"--config", file}, env: map[string]string{"PT_TURN_SECRET": "from-env"},
			wantListen: "0.0.0.0:443", wantSecret: "from-env", wantURLs: "stun:a:3478,turn:b:3478",
			wantSrc: map[string]Source{"turn-secret": FromEnv}},
		{name: "flag beats env and file", args: []string{"--config", file, "--listen=:9", "--ice-url", "stun:c"},
			env:        map[string]string{"PT_LISTEN": ":8"},
			wantListen: ":9", wantSecret: "from-file", wantURLs: "stun:c",
			wantSrc: map[string]Source{"listen": FromFlag, "ice-url": FromFlag}},
		{name: "config file named by the environment", env: map[string]string{"PT_CONFIG": file},
			wantListen: "0.0.0.0:443", wantSecret: "from-file", wantURLs: "stun:a:3478,turn:b:3478",
			wantSrc: map[string]Source{"config": FromEnv, "listen": FromFile}},
		{name: "defaults", wantListen: "127.0.0.1:8080",
			wantSrc: map[string]Source{"listen": FromDefault, "turn-secret": FromDefault}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fs, listen, secret, _, urls := newSet()
			p, err := Parse(fs, tc.args, Options{EnvPrefix: "PT"})
			if err != nil {
				t.Fatal(err)
			}
			if *listen != tc.wantListen || *secret != tc.wantSecret || urls.String() != tc.wantURLs {
				t.Errorf("got listen=%q secret=%q urls=%q", *listen, *secret, urls.String())
			}
			for name, want := range tc.wantSrc {
				if got := p.Source(name); got != want {
					t.Errorf("source of %s = %s, want %s", name, got, want)
				}
			}
		})
	}
}

func TestUnknownFileLineIsRefused(t *testing.T) {
	fs, _, _, _, _ := newSet()
	_, err := Parse(fs, []string{"--config", writeFile(t, "listne 0.0.0.0:443\n")}, Options{EnvPrefix: "PT"})
	if err == nil || !strings.Contains(err.Error(), "listne") {
		t.Fatalf("a misspelt setting was accepted: %v", err)
	}
	fs, _, _, _, _ = newSet()
	if _, err := Parse(fs, []string{"--config", writeFile(t, "listne x\n")}, Options{EnvPrefix: "PT", IgnoreUnknown: true}); err != nil {
		t.Fatalf("IgnoreUnknown: %v", err)
	}
}

func TestMissingFileIsRefused(t *testing.T) {
	fs, _, _, _, _ := newSet()
	if _, err := Parse(fs, []string{"--config", filepath.Join(t.TempDir(), "nope")}, Options{EnvPrefix: "PT"}); err == nil {
		t.Fatal("a missing configuration file was accepted")
	}
}

func TestReportRedactsSecrets(t *testing.T) {
	t.Setenv("PT_TURN_SECRET", "hunter2-very-secret")
	fs, _, _, _, _ := newSet()
	p, err := Parse(fs, []string{"--listen", "0.0.0.0:443"}, Options{EnvPrefix: "PT", Secret: func(n string) bool { return n == "turn-secret" }})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	p.Report(&b)
	out := b.String()
	if strings.Contains(out, "hunter2") {
		t.Fatalf("report shows the secret:\n%s", out)
	}
	for _, want := range []string{"(secret)", "env PT_TURN_SECRET", "0.0.0.0:443  # flag", "# ice-url"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
