package egress

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// ErrInspected marks a certificate failure on a connection through a
// proxy: the proxy probably inspects TLS, re-signing every connection with
// a CA of its own.
var ErrInspected = errors.New("the certificate is not the server's: a proxy on the way seems to inspect TLS")

// ExplainCertificate turns a certificate verification failure on a
// connection that left by route (Route's answer) into an error that says
// what to do: fix is the program's own advice ("give the proxy's CA with
// --ca-file", or, for mutual TLS, "exempt the host from inspection").
// Other errors come back unchanged.
func ExplainCertificate(err error, route, fix string) error {
	if err == nil {
		return nil
	}
	var (
		ua  x509.UnknownAuthorityError
		cve *tls.CertificateVerificationError
		he  x509.HostnameError
	)
	issuer := ""
	switch {
	case errors.As(err, &ua):
		if ua.Cert != nil {
			issuer = ua.Cert.Issuer.String()
		}
	case errors.As(err, &cve):
		if len(cve.UnverifiedCertificates) > 0 {
			issuer = cve.UnverifiedCertificates[0].Issuer.String()
		}
	case errors.As(err, &he):
		if he.Certificate != nil {
			issuer = he.Certificate.Issuer.String()
		}
	default:
		return err
	}
	who := "issued by " + issuer
	if issuer == "" {
		who = "from an unknown issuer"
	}
	if proxy, ok := strings.CutPrefix(route, "via proxy "); ok {
		return fmt.Errorf("%w: %w (the certificate is %s; proxy %s seems to inspect TLS: %s)", ErrInspected, err, who, proxy, fix)
	}
	return fmt.Errorf("%w (the certificate is %s: %s)", err, who, fix)
}
