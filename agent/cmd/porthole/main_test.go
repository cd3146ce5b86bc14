package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/internal/pionslog"
)

func runArgs(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

func TestHelpAndVersionExitZero(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"}, {"help", "forward"}, {"help", "ssh"}, {"forward", "--help"}, {"ssh", "--help"},
		{"devices", "-h"}, {"--version"}, {"version"}, {"version", "--json"}, {"completion", "bash"},
	} {
		code, out, errOut := runArgs(args...)
		if code != exitOK || out == "" || errOut != "" {
			t.Errorf("porthole %v: exit %d, stdout %d bytes, stderr %q", args, code, len(out), errOut)
		}
	}
	_, out, _ := runArgs("help", "forward")
	if !strings.Contains(out, "--stdio") || !strings.Contains(out, "usage: porthole forward") {
		t.Errorf("help forward:\n%s", out)
	}
	_, out, _ = runArgs("--version")
	if !strings.HasPrefix(out, "porthole ") || !strings.Contains(out, "go1.") || !strings.Contains(out, "pion/webrtc/v4 v4.") {
		t.Errorf("--version:\n%s", out)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"--no-such-flag"}, {"forward", "printer-1"}, {"forward", "printer-1", "99999", "--listen", "x"},
		{"forward", "--stdio", "--listen", "127.0.0.1:0", "printer-1", "22"}, {"help", "frobnicate"}, {"completion", "tcsh"},
		{"ssh"},
	} {
		code, _, errOut := runArgs(args...)
		if code != exitUsage || !strings.Contains(errOut, "porthole: ") || !strings.Contains(errOut, "\n  run 'porthole help") {
			t.Errorf("porthole %v: exit %d, stderr %q; want 2 with what to do next", args, code, errOut)
		}
	}
}

func TestProxyCommandQuoting(t *testing.T) {
	a := &app{server: "https://porthole.example.com/a b%", loopback: true}
	got, err := a.proxyCommand("printer-1")
	if err != nil {
		t.Fatal(err)
	}
	// %p stays for ssh; a literal % is doubled; the URL is quoted.
	if !strings.HasSuffix(got, " --server 'https://porthole.example.com/a b%%' --loopback-only forward --stdio printer-1 %p") {
		t.Fatalf("ProxyCommand %q", got)
	}
	for in, want := range map[string]string{"plain-1.2:3": "plain-1.2:3", "it's": `'it'\''s'`, "": "''", "a b": "'a b'", "$HOME": "'$HOME'"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
	if got := hostKeyAlias("https://porthole.example.com:8443", "printer-1"); got != "porthole.porthole.example.com.printer-1" {
		t.Errorf("hostKeyAlias = %q", got)
	}
}

// TestLibraryLogsAreSilent: pion's loggers (internal/pionslog) write
// nothing to the terminal unless --verbose; Porthole's own warnings do.
func TestLibraryLogsAreSilent(t *testing.T) {
	for _, verbose := range []bool{false, true} {
		var buf bytes.Buffer
		log := newLogger(&buf, verbose).With("session", "s1")
		pion := pionslog.Factory{Log: log, ScopeKey: "pion", DebugLevel: -4}.NewLogger("ice")
		pion.Warn("Failed to ping without candidate pairs")
		pion.Errorf("a library error %d", 1)
		log.Warn("signaling connection lost")
		out := buf.String()
		if strings.Contains(out, "candidate pairs") != verbose || strings.Contains(out, "library error") != verbose {
			t.Errorf("verbose=%v: pion lines shown=%v:\n%s", verbose, !verbose, out)
		}
		if !strings.Contains(out, "signaling connection lost") {
			t.Errorf("verbose=%v: our own warning is gone:\n%s", verbose, out)
		}
		if !verbose && strings.Contains(out, "time=") {
			t.Errorf("timestamps on the terminal: %s", out)
		}
	}
}

// TestProgressSaysWhatItWaitsFor: each stage is shown, and again with the
// time it took while it lasts; in quiet mode (ssh owns the terminal)
// only stages longer than a moment show.
func TestProgressSaysWhatItWaitsFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		p := newProgress(&buf, false)
		p.set("asking signaling for a session")
		time.Sleep(25 * time.Second)
		p.stop()
		want := "asking signaling for a session\nstill waiting (10s): asking signaling for a session\nstill waiting (20s): asking signaling for a session\n"
		if buf.String() != want {
			t.Fatalf("progress:\n%q\nwant\n%q", buf.String(), want)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		p := newProgress(&buf, true)
		p.set("fast stage")
		time.Sleep(time.Second)
		p.set("slow stage")
		time.Sleep(3 * time.Second)
		p.stop()
		if buf.String() != "porthole: slow stage\n" {
			t.Fatalf("quiet progress: %q", buf.String())
		}
	})
}

type closeRecorder struct {
	bytes.Buffer
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// TestStdioHalfClose: stdin's EOF half-closes the stream (the far end
// still answers), and the far end's EOF closes stdout.
func TestStdioHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(c) // until our half-close
		_, _ = c.Write(bytes.ToUpper(b))
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	out := &closeRecorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tunnel.Pipe(ctx, &stdioConn{r: strings.NewReader("hello over stdio"), w: out}, c); err != nil {
		t.Fatal(err)
	}
	if out.String() != "HELLO OVER STDIO" || !out.closed {
		t.Fatalf("stdout %q closed=%v", out.String(), out.closed)
	}
}
