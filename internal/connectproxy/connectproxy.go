// Package connectproxy is a small HTTP CONNECT proxy for tests: it maps
// the names a test's clients ask for to loopback listeners (a proxy
// resolves names itself, and loopback destinations are never proxied by
// the clients), optionally demands Basic credentials, and counts what it
// tunnelled. Real-proxy behaviour is tested against squid and tinyproxy
// in integration/.
package connectproxy

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// Options configure a Proxy.
type Options struct {
	// Hosts maps CONNECT targets (host:port) to the addresses to dial;
	// other targets get 403.
	Hosts map[string]string
	// User and Password, if set, are demanded (407 otherwise).
	User, Password string
}

// Proxy is a running test proxy.
type Proxy struct {
	Addr string // host:port of the proxy
	// Tunnels counts CONNECTs that got a 200; Refused those that did not.
	Tunnels, Refused atomic.Int64

	opt   Options
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// Start runs a proxy on loopback until the test ends.
func Start(t testing.TB, opt Options) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), opt: opt, ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Go(p.serve)
	t.Cleanup(p.close)
	return p
}

// URL is the proxy's http:// URL, without credentials.
func (p *Proxy) URL() string { return "http://" + p.Addr }

func (p *Proxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *Proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c, true) {
			c.Close()
			return
		}
		p.wg.Go(func() {
			defer p.track(c, false)
			defer c.Close()
			p.handle(c)
		})
	}
}

func (p *Proxy) handle(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	refuse := func(status string, extra string) {
		p.Refused.Add(1)
		_, _ = io.WriteString(c, "HTTP/1.1 "+status+"\r\n"+extra+"Content-Length: 0\r\n\r\n")
	}
	if req.Method != http.MethodConnect {
		refuse("405 Method Not Allowed", "")
		return
	}
	if p.opt.User != "" || p.opt.Password != "" {
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.opt.User+":"+p.opt.Password))
		if req.Header.Get("Proxy-Authorization") != want {
			refuse("407 Proxy Authentication Required", "Proxy-Authenticate: Basic realm=\"test proxy\"\r\n")
			return
		}
	}
	dst, ok := p.opt.Hosts[req.Host]
	if !ok {
		refuse("403 Forbidden", "")
		return
	}
	up, err := net.Dial("tcp", dst)
	if err != nil {
		refuse("502 Bad Gateway", "")
		return
	}
	if !p.track(up, true) {
		up.Close()
		return
	}
	defer p.track(up, false)
	defer up.Close()
	p.Tunnels.Add(1)
	_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(up, br)
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = io.Copy(c, up)
	c.Close()
	<-done
}
