package deviceid

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"

	"github.com/porthole-dev/porthole/agent/tlscompat"
)

// maxProbeBody bounds what the HTTP probe reads of a device page.
const maxProbeBody = 256 << 10

// probeSerial fetches p.Path from the pinned address and returns the
// serial the pattern finds. Redirects are not followed. Over https the
// device must present the certificate whose SHA-256 is cert, the one the
// contact saw.
func probeSerial(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), t Target, addr netip.Addr, p *HTTPProbe, cert string, level tlscompat.Level) (string, error) {
	re, err := regexp.Compile(p.Pattern)
	if err != nil {
		return "", err
	}
	pinned := netip.AddrPortFrom(addr, uint16(t.Port)).String() //nolint:gosec // validated port
	name := t.ServerName
	if name == "" {
		name = t.Host
	}
	tc := &tls.Config{ServerName: name, InsecureSkipVerify: true} //nolint:gosec // identity is the pin and serial
	if cert != "" {
		if tc.VerifyConnection, err = PinVerifier(t.Device, cert); err != nil {
			return "", err
		}
	}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dial(ctx, network, pinned) // never where the URL says
		},
		TLSClientConfig:   tlscompat.Config(tc, level), // the rung the contact found
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	scheme := t.Scheme
	if scheme == "" {
		scheme = "http"
	}
	host := t.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+":"+portString(t.Port)+p.Path, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("probe %s: HTTP %d", p.Path, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if err != nil {
		return "", fmt.Errorf("probe %s: %w", p.Path, err)
	}
	m := re.FindSubmatch(body)
	switch {
	case m == nil:
		return "", fmt.Errorf("probe %s: pattern not found", p.Path)
	case len(m) > 1:
		return strings.TrimSpace(string(m[1])), nil
	}
	return strings.TrimSpace(string(m[0])), nil
}
