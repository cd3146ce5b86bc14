package deviceid

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gosnmp/gosnmp"
)

// params builds the gosnmp client for target (not yet connected).
func (s *SNMP) params(target string) (*gosnmp.GoSNMP, error) {
	port := s.Port
	if port == 0 {
		port = 161
	}
	g := &gosnmp.GoSNMP{
		Target:    target,
		Port:      uint16(port), //nolint:gosec // range checked by Validate
		Transport: "udp",
		Timeout:   2 * time.Second,
		Retries:   1,
		MaxOids:   1,
	}
	switch s.Version {
	case "", "2c":
		g.Version = gosnmp.Version2c
		g.Community = s.Community
		if g.Community == "" {
			g.Community = "public"
		}
	case "3":
		if s.User == "" {
			return nil, errors.New("snmp v3 needs a user")
		}
		usm := &gosnmp.UsmSecurityParameters{UserName: s.User, AuthenticationPassphrase: s.AuthPass, PrivacyPassphrase: s.PrivPass}
		flags := gosnmp.NoAuthNoPriv
		if s.AuthProtocol != "" {
			auth, ok := authProtocols[strings.ToUpper(s.AuthProtocol)]
			if !ok {
				return nil, fmt.Errorf("snmp authProtocol %q unknown", s.AuthProtocol)
			}
			usm.AuthenticationProtocol = auth
			flags = gosnmp.AuthNoPriv
		}
		if s.PrivProtocol != "" {
			if s.AuthProtocol == "" {
				return nil, errors.New("snmp privProtocol needs an authProtocol")
			}
			priv, ok := privProtocols[strings.ToUpper(s.PrivProtocol)]
			if !ok {
				return nil, fmt.Errorf("snmp privProtocol %q unknown", s.PrivProtocol)
			}
			usm.PrivacyProtocol = priv
			flags = gosnmp.AuthPriv
		}
		g.Version = gosnmp.Version3
		g.SecurityModel = gosnmp.UserSecurityModel
		g.MsgFlags = flags
		g.SecurityParameters = usm
	default:
		return nil, fmt.Errorf("snmp version %q: want 2c or 3", s.Version)
	}
	return g, nil
}

var authProtocols = map[string]gosnmp.SnmpV3AuthProtocol{
	"MD5": gosnmp.MD5, "SHA": gosnmp.SHA, "SHA224": gosnmp.SHA224, "SHA256": gosnmp.SHA256,
	"SHA384": gosnmp.SHA384, "SHA512": gosnmp.SHA512,
}

var privProtocols = map[string]gosnmp.SnmpV3PrivProtocol{
	"DES": gosnmp.DES, "AES": gosnmp.AES, "AES192": gosnmp.AES192, "AES256": gosnmp.AES256,
	"AES192C": gosnmp.AES192C, "AES256C": gosnmp.AES256C,
}

// SNMPSerial reads the serial number (an OCTET STRING) at s.OID (default
// prtGeneralSerialNumber) from the device at addr.
func SNMPSerial(ctx context.Context, addr netip.Addr, s *SNMP) (string, error) {
	g, err := s.params(addr.String())
	if err != nil {
		return "", err
	}
	g.Context = ctx
	if dl, ok := ctx.Deadline(); ok {
		g.Timeout = min(g.Timeout, time.Until(dl))
	}
	if err := g.Connect(); err != nil {
		return "", fmt.Errorf("snmp %s: %w", addr, err)
	}
	defer g.Conn.Close()
	oid := s.OID
	if oid == "" {
		oid = PrtGeneralSerialNumber
	}
	res, err := g.Get([]string{oid})
	if err != nil {
		return "", fmt.Errorf("snmp get %s from %s: %w", oid, addr, err)
	}
	if len(res.Variables) != 1 {
		return "", fmt.Errorf("snmp get %s: %d values", oid, len(res.Variables))
	}
	v := res.Variables[0]
	b, ok := v.Value.([]byte)
	if v.Type != gosnmp.OctetString || !ok {
		return "", fmt.Errorf("snmp %s: no serial number there (%v)", oid, v.Type)
	}
	if len(b) > 256 || !utf8.Valid(b) {
		return "", fmt.Errorf("snmp %s: serial number is not short text", oid)
	}
	return strings.TrimSpace(string(b)), nil
}
