// Package deviceid checks, before every session, that the device at a
// configured address is still the device the agent declared: its host name
// resolved once and the address pinned for the session; the device
// reached without opening a connection on any of its service ports — its
// web port's own TLS or TCP contact where it has a web page, otherwise one
// UDP datagram to the discard port (reach.go) — which also fills the
// neighbour table; then its MAC address read from the neighbour table, its
// serial number read over SNMP (Printer-MIB prtGeneralSerialNumber, v2c or
// v3) or from an HTTP probe with a pattern, and the SHA-256 of its TLS
// certificate compared with a pin: the configured one, or the one recorded
// at first use (tofu.go). Any mismatch refuses the session with a reason a
// technician can act on — this is what protects a customer when DHCP hands
// a printer's address to another machine. VerifyNeighbor repeats the MAC
// check on each connection of the session.
package deviceid

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/agent/tlscompat"
	"github.com/porthole-dev/porthole/proto"
)

// PrtGeneralSerialNumber is Printer-MIB's prtGeneralSerialNumber for the
// first printer (RFC 3805).
const PrtGeneralSerialNumber = "1.3.6.1.2.1.43.5.1.1.17.1"

// Expect is the identity a device must show. Zero fields are not checked.
type Expect struct {
	// MAC is the expected hardware address ("02:00:5e:10:00:01"). The
	// device must be on a link the agent shares (no router between them).
	MAC string `json:"mac,omitempty"`
	// Serial is the expected serial number, read with SNMP or HTTPProbe.
	Serial string `json:"serial,omitempty"`
	// SNMP reads the serial over SNMP.
	SNMP *SNMP `json:"snmp,omitempty"`
	// HTTPProbe reads the serial from a page of the device.
	HTTPProbe *HTTPProbe `json:"httpProbe,omitempty"`
	// TLSCertSHA256 is the hex SHA-256 of the DER certificate an https
	// device presents ("AB:CD:…" or "abcd…").
	TLSCertSHA256 string `json:"tlsCertSha256,omitempty"`
}

// SNMP says how to ask a device for its serial.
type SNMP struct {
	Port    int    `json:"port,omitempty"`    // default 161
	Version string `json:"version,omitempty"` // "2c" (default) or "3"
	// Community for v2c; default "public".
	Community string `json:"community,omitempty"`
	// v3 user-based security: AuthProtocol MD5, SHA, SHA224, SHA256,
	// SHA384, SHA512 or "" (noAuthNoPriv); PrivProtocol DES, AES,
	// AES192, AES256 or "" (authNoPriv).
	User         string `json:"user,omitempty"`
	AuthProtocol string `json:"authProtocol,omitempty"`
	AuthPass     string `json:"authPass,omitempty"`
	PrivProtocol string `json:"privProtocol,omitempty"`
	PrivPass     string `json:"privPass,omitempty"`
	// OID of the serial; default PrtGeneralSerialNumber.
	OID string `json:"oid,omitempty"`
}

// HTTPProbe reads the serial from a page: the first submatch of Pattern
// (or the whole match without a group) is the serial.
type HTTPProbe struct {
	Path    string `json:"path"`    // e.g. "/api/status"
	Pattern string `json:"pattern"` // e.g. `"serial":"([^"]+)"`
}

// Validate checks an expectation's own fields.
func (e *Expect) Validate() error {
	if e.MAC != "" {
		if _, err := net.ParseMAC(e.MAC); err != nil {
			return fmt.Errorf("mac %q: %w", e.MAC, err)
		}
	}
	if e.Serial != "" && e.SNMP == nil && e.HTTPProbe == nil {
		return errors.New("serial needs snmp or httpProbe to read it")
	}
	if e.Serial == "" && (e.SNMP != nil || e.HTTPProbe != nil) {
		return errors.New("snmp and httpProbe need the expected serial")
	}
	if e.SNMP != nil && e.HTTPProbe != nil {
		return errors.New("serial through snmp or httpProbe, not both")
	}
	if s := e.SNMP; s != nil {
		if s.Port < 0 || s.Port > 65535 {
			return fmt.Errorf("snmp port %d out of range", s.Port)
		}
		if _, err := s.params("192.0.2.1"); err != nil {
			return err
		}
	}
	if p := e.HTTPProbe; p != nil {
		if !strings.HasPrefix(p.Path, "/") {
			return fmt.Errorf("httpProbe path %q must start with /", p.Path)
		}
		if _, err := regexp.Compile(p.Pattern); err != nil || p.Pattern == "" {
			return fmt.Errorf("httpProbe pattern: %v", err)
		}
	}
	if e.TLSCertSHA256 != "" {
		if _, err := parseFingerprint(e.TLSCertSHA256); err != nil {
			return err
		}
	}
	return nil
}

func parseFingerprint(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("tlsCertSha256 %q is not a hex SHA-256", s)
	}
	return b, nil
}

// Target is where a device is configured to be.
type Target struct {
	Device string
	Host   string // IP address or host name, no port
	Scheme string // "http" or "https"
	// Port is the device's web port, contacted (TCP, and TLS for https)
	// to check reachability and read the certificate; 0 means the device
	// has no web page, and none of its ports is contacted.
	Port int
	// ServerName is the TLS server name for https; "" means Host.
	ServerName string
	// TLSFrom is the rung of the legacy TLS ladder (agent/tlscompat) the
	// contact starts at: the one remembered for the device.
	TLSFrom tlscompat.Level
}

// Checker runs the checks. Its zero value uses the system's resolver,
// neighbour table and network.
type Checker struct {
	// Lookup resolves a host name; nil means net.DefaultResolver.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// Neighbor returns the hardware address the neighbour table holds for
	// ip; nil means the kernel's (NeighborMAC).
	Neighbor func(ip netip.Addr) (net.HardwareAddr, error)
	// Timeout bounds each step (contact, SNMP, HTTP probe); 0 means 5 s.
	Timeout time.Duration
	// Dial opens TCP connections to the device (contact, HTTP probe); nil
	// means a net.Dialer. SNMP uses its own UDP socket.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Roots are the CAs an https device's chain is verified with to set
	// Result.CertVerified; nil means the system's.
	Roots *x509.CertPool
	// ProbePort is the UDP port of the reachability datagram (reach.go);
	// 0 means DiscardPort.
	ProbePort int
	// ReachWait bounds the wait for an answer to it; 0 means
	// DefaultReachWait.
	ReachWait time.Duration
}

func (c *Checker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.Dial != nil {
		return c.Dial(ctx, network, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// Result is what a check found.
type Result struct {
	Addr   netip.Addr // the pinned address: connect to nothing else this session
	MAC    string
	Serial string
	// CertSHA256 is the hex SHA-256 of the DER leaf certificate an https
	// device presented.
	CertSHA256 string
	// CertVerified says the https device's chain verifies with
	// Checker.Roots for its server name (a public or company CA): such a
	// device is not pinned at first use.
	CertVerified bool
	// TLSPin is the fingerprint every connection of the session must
	// present: the configured tlsCertSha256, or the one pinned at first
	// use (PinStore.Apply); "" leaves TLS to CA verification.
	TLSPin string
	// Reached says how the device was seen to be there (ReachedWeb,
	// ReachedNeighbor, ReachedICMP, ReachedSNMP); "" means nothing
	// answered: the device may drop what the check sends, and only a
	// session's own connection will tell.
	Reached string
	// TLSLevel is the rung of the TLS ladder the device needed, and
	// LegacyTLS what that means, nil for modern TLS.
	TLSLevel  tlscompat.Level
	LegacyTLS *proto.LegacyTLS
}

// Mismatch is a device that answered but is not the one declared.
type Mismatch struct {
	Device, What, Got, Want string
	Addr                    netip.Addr
}

func (m *Mismatch) Error() string {
	return fmt.Sprintf("device %s at %s failed its identity check: %s is %q, expected %q — another machine may have this address",
		m.Device, m.Addr, m.What, m.Got, m.Want)
}

// Resolve returns the address of t.Host: itself if it is an IP address
// (IPv4-mapped IPv6 unmapped), otherwise the first answer of one lookup.
func (c *Checker) Resolve(ctx context.Context, host string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return ip.Unmap().WithZone(""), nil
	}
	lookup := c.Lookup
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	ips, err := lookup(ctx, host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve %s: no address", host)
	}
	return ips[0].Unmap(), nil
}

func (c *Checker) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 5 * time.Second
}

// Check resolves t once, contacts it and verifies e. Every failure is a
// *proto.Error with code device_failed (device_timeout when it did not
// answer) whose message says why; a wrong identity wraps a *Mismatch.
func (c *Checker) Check(ctx context.Context, t Target, e Expect) (*Result, error) {
	addr, err := c.Resolve(ctx, t.Host)
	if err != nil {
		return nil, fail(t.Device, err)
	}
	res := &Result{Addr: addr}
	if t.Port != 0 {
		// The web port's own probe: a TCP connection (a TLS handshake
		// for https), what any browser does. It also makes the kernel
		// learn the device's hardware address.
		cert, err := c.contact(ctx, t, addr)
		if err != nil {
			return res, fail(t.Device, err)
		}
		res.Reached = ReachedWeb
		if cert != nil {
			sum := sha256.Sum256(cert.Raw)
			res.CertSHA256 = hex.EncodeToString(sum[:])
			res.CertVerified = cert.Verified
			res.TLSLevel, res.LegacyTLS = cert.Level, cert.Legacy
		}
	} else if e.SNMP == nil || e.MAC != "" {
		// No web page: reach it without touching a service (reach.go).
		// With a MAC to check, the neighbour table is waited for below.
		wait := c.ReachWait
		if wait <= 0 {
			wait = DefaultReachWait
		}
		if e.MAC != "" {
			wait = 0
		}
		nctx, cancel := context.WithTimeout(ctx, c.timeout())
		how, err := c.nudge(nctx, addr, wait)
		cancel()
		if err != nil {
			return res, fail(t.Device, err)
		}
		res.Reached = how
	}
	if e.TLSCertSHA256 != "" {
		want, _ := parseFingerprint(e.TLSCertSHA256)
		if res.CertSHA256 != hex.EncodeToString(want) {
			return res, mismatch(&Mismatch{Device: t.Device, Addr: addr, What: "TLS certificate SHA-256", Got: res.CertSHA256, Want: hex.EncodeToString(want)})
		}
		res.TLSPin = res.CertSHA256
	}
	if e.MAC != "" {
		want, _ := net.ParseMAC(e.MAC)
		nctx, cancel := context.WithTimeout(ctx, c.timeout())
		got, err := c.waitNeighbor(nctx, addr)
		cancel()
		if err != nil {
			return res, fail(t.Device, fmt.Errorf("read the MAC address of %s: %w", addr, err))
		}
		res.MAC = got.String()
		if res.Reached == "" {
			res.Reached = ReachedNeighbor
		}
		if !strings.EqualFold(got.String(), want.String()) {
			return res, mismatch(&Mismatch{Device: t.Device, Addr: addr, What: "MAC address", Got: got.String(), Want: want.String()})
		}
	}
	if e.Serial != "" {
		sctx, cancel := context.WithTimeout(ctx, c.timeout())
		defer cancel()
		var serial string
		switch {
		case e.SNMP != nil:
			serial, err = SNMPSerial(sctx, addr, e.SNMP)
		case e.HTTPProbe != nil:
			serial, err = probeSerial(sctx, c.dial, t, addr, e.HTTPProbe, res.CertSHA256, res.TLSLevel)
		}
		if err != nil {
			return res, fail(t.Device, fmt.Errorf("read the serial number: %w", err))
		}
		res.Serial = serial
		if e.SNMP != nil && res.Reached == "" {
			res.Reached = ReachedSNMP
		}
		if serial != e.Serial {
			return res, mismatch(&Mismatch{Device: t.Device, Addr: addr, What: "serial number", Got: serial, Want: e.Serial})
		}
	}
	return res, nil
}

// contact connects to the device's web port (with TLS for https, returning
// the leaf certificate, which is verified by pin; whether its chain also
// verifies with the CAs is noted).
func (c *Checker) contact(ctx context.Context, t Target, addr netip.Addr) (*tlsLeaf, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	target := netip.AddrPortFrom(addr, uint16(t.Port)).String() //nolint:gosec // port validated by config
	dial := func(ctx context.Context) (net.Conn, error) {
		conn, err := c.dial(ctx, "tcp", target)
		if err != nil {
			return nil, fmt.Errorf("contact %s port %d: %w", addr, t.Port, err)
		}
		return conn, nil
	}
	if t.Scheme != "https" {
		conn, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		_ = conn.Close()
		return nil, nil
	}
	name := t.ServerName
	if name == "" {
		name = t.Host
	}
	// Old devices speak old TLS: step down the ladder as far as needed,
	// from where the device was last reached.
	tc, level, err := tlscompat.Handshake(ctx, dial, &tls.Config{ServerName: name, InsecureSkipVerify: true}, t.TLSFrom) //nolint:gosec // checked by pin
	if err != nil {
		return nil, fmt.Errorf("TLS with %s: %w", addr, err)
	}
	defer tc.Close()
	cs := tc.ConnectionState()
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("TLS with %s: no certificate", addr)
	}
	return &tlsLeaf{Raw: certs[0].Raw, Verified: c.verifyChain(certs, name), Level: level, Legacy: tlscompat.Describe(cs)}, nil
}

type tlsLeaf struct {
	Raw      []byte
	Verified bool
	Level    tlscompat.Level
	Legacy   *proto.LegacyTLS
}

// verifyChain reports whether certs (leaf first) verify with c.Roots for
// name.
func (c *Checker) verifyChain(certs []*x509.Certificate, name string) bool {
	inter := x509.NewCertPool()
	for _, ic := range certs[1:] {
		inter.AddCert(ic)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: c.Roots, Intermediates: inter, DNSName: strings.Trim(name, "[]")})
	return err == nil
}

func fail(device string, err error) error {
	code := proto.CodeDeviceFailed
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		code = proto.CodeDeviceTimeout
	}
	return &checkError{pe: proto.Errorf(code, "device %s: %v", device, err), err: err}
}

func mismatch(m *Mismatch) error {
	return &checkError{pe: proto.Errorf(proto.CodeDeviceFailed, "%s", m.Error()), err: m}
}

// checkError is a *proto.Error for the wire that still unwraps to its
// cause (a *Mismatch, a net error).
type checkError struct {
	pe  *proto.Error
	err error
}

func (e *checkError) Error() string { return e.pe.Error() }
func (e *checkError) Unwrap() []error {
	return []error{e.pe, e.err}
}

// PinVerifier returns a tls.Config.VerifyConnection that accepts only a
// leaf certificate whose SHA-256 is fingerprint (hex).
func PinVerifier(device, fingerprint string) (func(tls.ConnectionState) error, error) {
	want, err := parseFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("device presented no certificate")
		}
		got := sha256.Sum256(cs.PeerCertificates[0].Raw)
		if hex.EncodeToString(got[:]) != hex.EncodeToString(want) {
			return fmt.Errorf("device %s: TLS certificate changed (SHA-256 %x, pinned %x)", device, got, want)
		}
		return nil
	}, nil
}

func portString(p int) string { return strconv.Itoa(p) }
