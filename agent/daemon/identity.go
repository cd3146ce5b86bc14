package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/deviceproxy"
	"github.com/porthole-dev/porthole/agent/enroll"
	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/agent/tlscompat"
	"github.com/porthole-dev/porthole/proto"
)

// maxGranted bounds the replay memory: more live grants than this at once
// means something is wrong, and sessions are refused until old ones expire.
const maxGranted = 10000

// inventoryTimeout bounds the device checks before hello.
const inventoryTimeout = 3 * time.Second

// dialOptions says how to reach signaling: with mutual TLS to the agent
// URL of the enrollment, or (demo and tests without enrollment) with the
// pre-shared key to the server.
func (a *Agent) dialOptions() (string, sigclient.Options) {
	if e := a.cfg.Enrollment; e != nil {
		return e.Info().AgentURL + proto.PathAgentSocket, sigclient.Options{TLS: e.TLSConfig(), Logger: a.log,
			Egress: a.cfg.Egress, CertHint: enroll.MutualTLSHint}
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+a.cfg.Key)
	var tc *tls.Config
	if a.cfg.RootCAs != nil {
		tc = &tls.Config{RootCAs: a.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	}
	return sigclient.SocketURL(a.cfg.Server, proto.PathAgentSocket), sigclient.Options{Header: h, Logger: a.log, TLS: tc,
		Egress: a.cfg.Egress, CertHint: "give the CA that issued it (the agent's caFile)"}
}

// inventory declares every device with what a check of it finds now.
func (a *Agent) inventory(ctx context.Context) []proto.Device {
	ctx, cancel := context.WithTimeout(ctx, inventoryTimeout)
	defer cancel()
	return a.declare(ctx, a.deviceList())
}

// declare declares devs with what a check of each finds now.
func (a *Agent) declare(ctx context.Context, devs []*device) []proto.Device {
	out := make([]proto.Device, len(devs))
	var wg sync.WaitGroup
	for i, d := range devs {
		id := d.cfg.ID
		out[i] = d.cfg.declaration()
		out[i].Policy = a.policyOf(d) // the site's floor, for signaling to match and show
		wg.Go(func() {
			res, err := a.checkDevice(ctx, d)
			h := &proto.DeviceHealth{Reachable: err == nil, Checked: time.Now().UTC().Truncate(time.Second),
				Signaling: truncate(a.signalingRoute(), proto.MaxSignalingRoute)}
			if err == nil && res.Reached == "" {
				h.Reachable, h.Unconfirmed = false, true
				h.Problem = "it answered none of the agent's probes (which never touch its services); a session's own connection will tell"
			}
			var m *deviceid.Mismatch
			var cc *deviceid.CertChanged
			if errors.As(err, &m) || errors.As(err, &cc) {
				h.Reachable = true // it answered, as somebody else
			}
			if err == nil && res != nil {
				h.TLS = res.LegacyTLS
			}
			if err != nil {
				msg := err.Error()
				var pe *proto.Error
				if errors.As(err, &pe) {
					msg = pe.Message
				}
				h.Problem = truncate(msg, proto.MaxText)
				a.log.Warn("device check failed", "device", id, "err", err)
			}
			out[i].Health = h
		})
	}
	wg.Wait()
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// checkDevice resolves d's address once and verifies its identity there.
//
// An https device without a configured tlsCertSha256 and without
// insecureSkipVerify is trusted on first use: the first successful check
// that finds a certificate whose chain does not verify with the system's
// CAs (a self-signed one) pins its SHA-256 in cfg.Pins, and every later
// check and every connection of a session must present that certificate
// again; another one refuses the session (device_failed, naming both
// fingerprints and the porthole-agent trust command that accepts it) and
// shows in the device's health. A device whose chain verifies with the
// CAs is left to CA verification (its certificate may be renewed), unless
// it was pinned before. insecureSkipVerify opts out of both, for devices
// that make a new certificate at every boot.
func (a *Agent) checkDevice(ctx context.Context, d *device) (*deviceid.Result, error) {
	res, err := a.cfg.Checker.Check(ctx, deviceid.Target{
		Device: d.cfg.ID, Host: d.cfg.Address, Scheme: d.cfg.Scheme, Port: d.cfg.HTTPPort,
		ServerName: serverName(d.cfg), TLSFrom: a.cfg.TLS.Start(d.cfg.ID),
	}, d.cfg.Expect)
	if res != nil && res.CertSHA256 != "" {
		// The contact got through the TLS handshake: remember the rung.
		if rerr := a.cfg.TLS.Remember(d.cfg.ID, res.TLSLevel); rerr != nil {
			a.log.Warn("cannot remember the device's TLS", "device", d.cfg.ID, "err", rerr)
		}
		if res.LegacyTLS != nil {
			a.log.Info("device needs legacy TLS", "device", d.cfg.ID, "rung", res.TLSLevel, "version", res.LegacyTLS.Version, "cipher", res.LegacyTLS.Cipher)
		}
	}
	if err != nil || d.cfg.Scheme != "https" || d.cfg.TLSCertSHA256 != "" || d.cfg.InsecureSkipVerify {
		return res, err
	}
	first, err := a.cfg.Pins.Apply(d.cfg.ID, res)
	if err != nil {
		return res, err
	}
	if first {
		a.log.Info("device TLS certificate pinned at first use", "device", d.cfg.ID, "sha256", res.TLSPin)
	}
	return res, nil
}

func serverName(d DeviceConfig) string {
	if d.HostHeader == "" {
		return ""
	}
	if h, _, err := net.SplitHostPort(d.HostHeader); err == nil {
		return h
	}
	return d.HostHeader
}

// checkGrant verifies the session's grant when the agent is enrolled: the
// signature, that it is for this session, agent, device and user, that it
// has not expired and was not used before. It returns the expiry the grant
// sets (zero without enrollment) and the grant (nil without enrollment).
func (a *Agent) checkGrant(session string, open *proto.SessionOpen) (time.Time, *proto.Grant, *proto.Error) {
	exp, g, err := a.verifyGrant(session, open)
	if err != nil {
		a.log.Warn("session grant refused", "session", session, "device", open.Device, "code", err.Code, "reason", err.Message)
	}
	return exp, g, err
}

func (a *Agent) verifyGrant(session string, open *proto.SessionOpen) (time.Time, *proto.Grant, *proto.Error) {
	e := a.cfg.Enrollment
	if e == nil {
		return time.Time{}, nil, nil
	}
	if open.Grant == "" {
		return time.Time{}, nil, proto.Errorf(proto.CodeUnauthorized, "session.open without a grant")
	}
	g, err := proto.VerifyGrant(open.Grant, e.GrantKey())
	if err != nil {
		return time.Time{}, nil, proto.Errorf(proto.CodeUnauthorized, "session grant refused: %v", err)
	}
	switch {
	case g.Session != session:
		return time.Time{}, nil, proto.Errorf(proto.CodeUnauthorized, "the grant is for another session")
	case g.Agent != e.Info().Agent:
		return time.Time{}, nil, proto.Errorf(proto.CodeUnauthorized, "the grant is for another agent")
	case g.Device != open.Device:
		return time.Time{}, nil, proto.Errorf(proto.CodeUnauthorized, "the grant is for another device")
	case g.User != open.User:
		return time.Time{}, nil, proto.Errorf(proto.CodeUnauthorized, "the grant is for another user")
	}
	now := a.clock.Now()
	exp := g.ExpiresAt()
	if !now.Before(exp) {
		return time.Time{}, nil, proto.Errorf(proto.CodeSessionEnded, "the grant expired at %s", exp.UTC().Format(time.RFC3339))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, until := range a.granted {
		if !now.Before(until) {
			delete(a.granted, id)
		}
	}
	if _, seen := a.granted[g.Session]; seen {
		return time.Time{}, nil, proto.Errorf(proto.CodeUnauthorized, "the grant was already used (replay)")
	}
	if len(a.granted) >= maxGranted {
		return time.Time{}, nil, proto.Errorf(proto.CodeRateLimited, "too many live grants")
	}
	a.granted[g.Session] = exp
	return exp, g, nil
}

// sessionProxy builds the session's own proxy to d, pinned to addr, the
// address the identity check verified: a host name is not looked up again
// during the session, so DNS cannot move it elsewhere. tlsPin, if set, is
// the certificate fingerprint every TLS connection to the device must
// present (the check's Result.TLSPin).
//
// A device with a configured MAC address has it checked again on every
// connection of the session, once established and before a byte is sent
// (deviceid.VerifyNeighbor): the neighbour table may have been stale at
// the check before the session. A mismatch refuses the connection and
// ends the session.
func (a *Agent) sessionProxy(d *device, addr netip.Addr, tlsPin, session string) (*deviceproxy.Proxy, error) {
	pd := d.cfg.proxyDevice()
	if mac := d.cfg.MAC; mac != "" {
		pd.VerifyConn = func(c net.Conn) error {
			err := a.cfg.Checker.VerifyNeighbor(d.cfg.ID, c, mac)
			if err != nil {
				a.log.Warn("device identity changed during the session; ending it", "session", session, "device", d.cfg.ID, "err", err)
				go a.endSessionID(session, proto.EndError, err.Error())
			}
			return err
		}
	}
	if pd.HostHeader == "" {
		if _, err := netip.ParseAddr(pd.Host); err != nil {
			// A host name: the device still sees it in Host (and SNI).
			pd.HostHeader = pd.Host
			if pd.HTTPPort != defaultPort(pd.Scheme) {
				pd.HostHeader = net.JoinHostPort(pd.Host, strconv.Itoa(pd.HTTPPort))
			}
		}
	}
	pd.Host = addr.String()
	if fp := tlsPin; fp != "" {
		verify, err := deviceid.PinVerifier(d.cfg.ID, fp)
		if err != nil {
			return nil, err
		}
		pd.InsecureSkipVerify, pd.VerifyConnection = true, verify // the pin replaces CA checks
	}
	// The legacy TLS ladder starts where the device was last reached, per
	// port, and what a session learns is remembered.
	tlsKey := func(port int) string {
		if port == d.cfg.HTTPPort {
			return d.cfg.ID
		}
		return d.cfg.ID + ":" + strconv.Itoa(port)
	}
	pd.TLSStart = func(port int) tlscompat.Level { return a.cfg.TLS.Start(tlsKey(port)) }
	pd.OnTLS = func(port int, level tlscompat.Level, _ *proto.LegacyTLS) {
		if err := a.cfg.TLS.Remember(tlsKey(port), level); err != nil {
			a.log.Warn("cannot remember the device's TLS", "device", d.cfg.ID, "port", port, "err", err)
		}
	}
	// Another port reached over https (the web port's https twin, when
	// the device sends the session there) is pinned at its first use.
	pd.VerifyPort = func(port int) func(tls.ConnectionState) error {
		if d.cfg.InsecureSkipVerify {
			return func(tls.ConnectionState) error { return nil }
		}
		return a.portPinVerifier(d.cfg.ID, tlsKey(port))
	}
	return deviceproxy.New(pd, a.log.With("device", d.cfg.ID))
}

func defaultPort(scheme string) int {
	if scheme == "https" {
		return 443
	}
	return 80
}

// portPinVerifier pins the certificate of a device's further https port
// at its first use (under key "device:port" in the pin store) and
// refuses another one later, as checkDevice does for the web port.
func (a *Agent) portPinVerifier(device, key string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("device presented no certificate")
		}
		sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
		got := hex.EncodeToString(sum[:])
		pinned, err := a.cfg.Pins.Get(key)
		if err != nil {
			return err
		}
		switch pinned {
		case got:
			return nil
		case "":
			if err := a.cfg.Pins.Set(key, got); err != nil {
				return err
			}
			a.log.Info("device TLS certificate pinned at first use", "device", device, "key", key, "sha256", got)
			return nil
		}
		return fmt.Errorf("device %s presented another TLS certificate on %s than the one pinned at first use: SHA-256 %s, pinned %s"+
			" — if the device's certificate was replaced, accept it with: porthole-agent trust --sha256 %s %s", device, key, got, pinned, got, key)
	}
}
