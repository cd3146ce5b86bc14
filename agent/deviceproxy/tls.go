package deviceproxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"

	"github.com/porthole-dev/porthole/agent/tlscompat"
)

// dialTLS is the Transport's TLS dialer: the configured address only, a
// declared port only, and the legacy TLS ladder (agent/tlscompat) from
// the rung the device was last reached at, so an old device is reached
// without a failed handshake per connection.
func (p *Proxy) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	_, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || !p.allowed(port) {
		return nil, p.refusePort(port)
	}
	from := p.tlsStart(port)
	conn, level, err := tlscompat.Handshake(ctx, func(ctx context.Context) (net.Conn, error) { return p.dial(ctx, port) },
		p.tlsConfig(port), from)
	if err != nil {
		return nil, fmt.Errorf("device port %d: %w", port, err)
	}
	if level != from {
		p.tlsMu.Lock()
		p.tlsLevel[port] = level
		p.tlsMu.Unlock()
		legacy := tlscompat.Describe(conn.ConnectionState())
		p.log.Info("deviceproxy: device needs older TLS", "device", p.d.ID, "port", port, "rung", level,
			"version", tls.VersionName(conn.ConnectionState().Version), "cipher", tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
		if p.d.OnTLS != nil {
			p.d.OnTLS(port, level, legacy)
		}
	}
	return conn, nil
}

func (p *Proxy) tlsStart(port int) tlscompat.Level {
	p.tlsMu.Lock()
	defer p.tlsMu.Unlock()
	if l, ok := p.tlsLevel[port]; ok {
		return l
	}
	l := tlscompat.Modern
	if p.d.TLSStart != nil {
		l = p.d.TLSStart(port)
	}
	p.tlsLevel[port] = l
	return l
}

// tlsConfig is the TLS configuration towards port: the web port's pin
// (or CA verification, or none when InsecureSkipVerify), another port's
// own verifier when the caller gave one.
func (p *Proxy) tlsConfig(port int) *tls.Config {
	c := &tls.Config{ServerName: tlsServerName(p.d), InsecureSkipVerify: p.d.InsecureSkipVerify, VerifyConnection: p.d.VerifyConnection} //nolint:gosec // per-device opt-in
	if port != p.d.HTTPPort && p.d.VerifyPort != nil {
		if v := p.d.VerifyPort(port); v != nil {
			c.InsecureSkipVerify, c.VerifyConnection = true, v //nolint:gosec // verified by v (a pin)
		}
	}
	return c
}
