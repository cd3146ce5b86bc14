package enroll

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/porthole-dev/porthole/agent/egress"
	"github.com/porthole-dev/porthole/internal/testcert"
)

// inspectingProxy accepts CONNECT, then terminates TLS itself with a
// certificate for the requested host from its own CA — what a proxy that
// inspects TLS does — and answers every request with 403 and a proto
// error, so a client that trusts its CA gets an HTTP answer.
func inspectingProxy(t *testing.T, ca *testcert.CA) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				host, _, _ := net.SplitHostPort(req.Host)
				_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				leaf := ca.Issue(t, host)
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{leaf.TLS}})
				if tc.Handshake() != nil {
					return
				}
				if _, err := http.ReadRequest(bufio.NewReader(tc)); err != nil {
					return
				}
				body := `{"code":"forbidden","message":"blocked by the inspecting proxy's policy"}`
				_, _ = io.WriteString(tc, "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "+
					strconv.Itoa(len(body))+"\r\n\r\n"+body)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// TestEnrollThroughAnInspectingProxy: enrollment through a proxy that
// re-signs TLS fails with an error that names the proxy and the CA option;
// with the proxy's CA given (--ca-file), TLS passes and the request
// reaches the far end.
func TestEnrollThroughAnInspectingProxy(t *testing.T) {
	ca := testcert.NewCA(t, "Corp TLS Inspection CA")
	proxy := inspectingProxy(t, ca)
	eg, err := egress.New(egress.Config{Proxy: httpproxy.Config{HTTPSProxy: "http://" + proxy}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	_, err = Enroll(ctx, "https://porthole.example", "phe_token", t.TempDir(), Options{Egress: eg})
	if !errors.Is(err, egress.ErrInspected) {
		t.Fatalf("err = %v, want the TLS-inspection explanation", err)
	}
	t.Log(err)
	for _, s := range []string{"Corp TLS Inspection CA", "proxy " + proxy + " seems to inspect TLS", "--ca-file"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}

	_, err = Enroll(ctx, "https://porthole.example", "phe_token", t.TempDir(), Options{Egress: eg, RootCAs: ca.Pool()})
	if err == nil || errors.Is(err, egress.ErrInspected) || !strings.Contains(err.Error(), "blocked by the inspecting proxy's policy") {
		t.Fatalf("with the proxy's CA: %v, want the far end's answer", err)
	}
}
