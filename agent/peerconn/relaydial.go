package peerconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/stun/v3"

	"github.com/porthole-dev/porthole/agent/egress"
)

// RelayDialTimeout bounds one TURN-over-TCP/TLS connection: through a
// proxy, its CONNECT exchange, and the TLS handshake with the relay.
const RelayDialTimeout = 15 * time.Second

// DialLog records which of a peer's TURN-over-TCP/TLS connections went
// through a proxy, so that the path can say so once ICE selected a pair.
// The zero value is ready; it is safe for concurrent use.
type DialLog struct {
	mu      sync.Mutex
	byLocal map[string]string // local address of the connection → proxy host:port, "" if direct
}

func (l *DialLog) record(local net.Addr, proxy string) {
	if l == nil || local == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byLocal == nil {
		l.byLocal = map[string]string{}
	}
	l.byLocal[local.String()] = proxy
}

// Proxy is the proxy (host:port) through which the relay connection of
// p's local relay candidate was tunnelled, or "" (direct, not a relay over
// TCP, or unknown).
func (l *DialLog) Proxy(p Path) string {
	if l == nil || p.LocalRelated == "" {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byLocal[p.LocalRelated]
}

// relayDialer is pion's ICE proxy dialer (SettingEngine.SetICEProxyDialer):
// pion hands it every TURN connection over TCP, for turn:…?transport=tcp
// and turns: URLs alike, and uses what it returns as is — so for turns:
// the TLS handshake with the relay happens here, on top of the egress's
// connection (direct, or a CONNECT tunnel through the site's proxy).
type relayDialer struct {
	egress *egress.Egress
	tls    map[string]string // host:port of a turns: URL → its TLS server name
	roots  *x509.CertPool
	log    *DialLog
	logger *slog.Logger
}

func newRelayDialer(cfg Config) *relayDialer {
	d := &relayDialer{egress: cfg.Egress, tls: map[string]string{}, roots: cfg.RelayRoots, log: cfg.Dials, logger: cfg.Logger}
	if d.logger == nil {
		d.logger = slog.New(slog.DiscardHandler)
	}
	plain := map[string]bool{}
	for _, s := range cfg.ICEServers {
		for _, raw := range s.URLs {
			u, err := stun.ParseURI(raw)
			if err != nil || u.Proto != stun.ProtoTypeTCP {
				continue
			}
			addr := net.JoinHostPort(u.Host, strconv.Itoa(u.Port))
			switch u.Scheme {
			case stun.SchemeTypeTURNS:
				d.tls[addr] = u.Host
			case stun.SchemeTypeTURN:
				plain[addr] = true
			}
		}
	}
	for addr := range plain {
		// One address named both ways: the dialer cannot tell which URL a
		// dial is for, so it does not guess TLS.
		delete(d.tls, addr)
	}
	return d
}

// Dial implements golang.org/x/net/proxy.Dialer.
func (d *relayDialer) Dial(network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), RelayDialTimeout)
	defer cancel()
	route := d.egress.Route("https://" + addr)
	proxy, _ := strings.CutPrefix(route, "via proxy ")
	if proxy == route {
		proxy = ""
	}
	c, err := d.egress.DialContext(ctx, "https", network, addr)
	if err != nil {
		d.logger.Info("TURN relay not reached", "relay", addr, "route", route, "err", err)
		return nil, err
	}
	transport := "tcp"
	if name, ok := d.tls[addr]; ok {
		transport = "tls"
		tc := tls.Client(c, &tls.Config{ServerName: name, RootCAs: d.roots, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			err = egress.ExplainCertificate(err, route, "give the CA of the relay's certificate (the agent's caFile)")
			d.logger.Info("TURN relay not reached", "relay", addr, "route", route, "transport", transport, "err", err)
			return nil, err
		}
		c = tc
	}
	d.log.record(c.LocalAddr(), proxy)
	d.logger.Debug("TURN relay reached", "relay", addr, "route", route, "transport", transport, "local", c.LocalAddr())
	return c, nil
}
