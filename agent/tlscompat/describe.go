package tlscompat

import (
	"crypto/tls"
	"strings"

	"github.com/porthole-dev/porthole/proto"
)

// Describe says what a connection needed beyond Go's defaults, or nil for
// a modern one (TLS 1.2 or 1.3 with a suite Go offers by default).
func Describe(cs tls.ConnectionState) *proto.LegacyTLS {
	name := tls.CipherSuiteName(cs.CipherSuite)
	var needs []string
	if cs.Version < tls.VersionTLS12 {
		needs = append(needs, tls.VersionName(cs.Version))
	}
	switch {
	case strings.HasPrefix(name, "TLS_RSA_"):
		needs = append(needs, "RSA key exchange")
	}
	switch {
	case strings.Contains(name, "_RC4_"):
		needs = append(needs, "RC4")
	case strings.Contains(name, "_3DES_"):
		needs = append(needs, "3DES")
	case strings.HasSuffix(name, "_CBC_SHA256"):
		needs = append(needs, "CBC with SHA-256")
	}
	if len(needs) == 0 {
		return nil
	}
	l := &proto.LegacyTLS{Version: tls.VersionName(cs.Version), Cipher: name, Needs: needs}
	if cs.Version < tls.VersionTLS12 {
		l.Note = "This device only speaks " + tls.VersionName(cs.Version) + " (" + name + "); Porthole reaches it, but its encryption is weak."
	} else {
		l.Note = "This device needs an old cipher suite (" + strings.Join(needs, ", ") + ": " + name + "); Porthole reaches it, but its encryption is weak."
	}
	return l
}
