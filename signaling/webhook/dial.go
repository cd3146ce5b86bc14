package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrRefusedDestination says a subscription's endpoint resolved to an
// address signaling does not call (Config.AllowPrivate).
var ErrRefusedDestination = errors.New("webhook: destination address refused")

// ErrBadURL says a subscription's URL is not acceptable.
var ErrBadURL = errors.New("webhook: bad endpoint URL")

// refusedRanges are destinations outside the public internet that
// IsGlobalUnicast and IsPrivate do not cover.
var refusedRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // CGNAT
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64: may embed any IPv4
	netip.MustParsePrefix("2001:db8::/32"), // documentation
}

// Refused reports whether signaling refuses to call ip unless the operator
// allows private destinations: loopback, private (RFC 1918, fc00::/7),
// link-local (169.254/16 with the cloud metadata address, fe80::/10),
// unspecified, multicast, CGNAT and the other non-public ranges, also as
// IPv4-mapped IPv6.
func Refused(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return true // IsGlobalUnicast is false for loopback, link-local, multicast, unspecified
	}
	for _, p := range refusedRanges {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// dialControl refuses, at connect time, an address Refused says no to: a
// check on the URL's host name alone would let DNS (or a rebinding) point
// the name at an internal address afterwards.
func dialControl(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrRefusedDestination, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || Refused(ip) {
		return fmt.Errorf("%w: %s is not a public address", ErrRefusedDestination, host)
	}
	return nil
}

// newClient returns the HTTP client of deliveries: no proxy from the
// environment (the check must see the endpoint's own address), the
// destination check on every dial unless allowPrivate, and redirects
// returned as the answer, never followed (a redirect to an internal
// address would otherwise skip the check's intent, and a subscriber's URL
// is the one it registered).
func newClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = dialControl
	}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
	}
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CheckURL validates a subscription's endpoint: an absolute https URL with
// a host, no user info and no fragment. The payload names technicians,
// devices and reasons, and the signature only proves who sent it, so it
// must travel encrypted: plain http is accepted only towards a loopback
// host and only when allowPrivate (tests and a developer's machine, where
// the request never leaves the host). An IP literal that Refused rejects
// is refused here already (host names are checked when dialled).
func CheckURL(raw string, allowPrivate bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: not an absolute URL", ErrBadURL)
	}
	if len(raw) > 2048 {
		return nil, fmt.Errorf("%w: longer than 2048 bytes", ErrBadURL)
	}
	if u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: no user info or fragment", ErrBadURL)
	}
	host := strings.ToLower(u.Hostname())
	ip, ipErr := netip.ParseAddr(host)
	loopback := host == "localhost" || (ipErr == nil && ip.Unmap().IsLoopback())
	switch u.Scheme {
	case "https":
	case "http":
		if !allowPrivate || !loopback {
			return nil, fmt.Errorf("%w: https only (plain http only to loopback, when private destinations are allowed)", ErrBadURL)
		}
	default:
		return nil, fmt.Errorf("%w: https only", ErrBadURL)
	}
	if !allowPrivate && (loopback || (ipErr == nil && Refused(ip))) {
		return nil, fmt.Errorf("%w: %s is not a public address", ErrRefusedDestination, host)
	}
	return u, nil
}

// errorText describes a failed attempt for the delivery log.
func errorText(err error) string {
	if errors.Is(err, ErrRefusedDestination) {
		return ErrRefusedDestination.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}
