package discovery

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/gosnmp/gosnmp"

	"github.com/porthole-dev/porthole/proto"
)

// OIDs SNMP asks every host for.
const (
	OIDSysDescr               = "1.3.6.1.2.1.1.1.0"
	OIDSysName                = "1.3.6.1.2.1.1.5.0"
	OIDPrtGeneralSerialNumber = "1.3.6.1.2.1.43.5.1.1.17.1" // Printer-MIB, RFC 3805
	OIDIfPhysAddress          = "1.3.6.1.2.1.2.2.1.6"       // a column: one per interface
	// maxIfRows bounds the ifPhysAddress rows read (one GETBULK).
	maxIfRows = 8
)

// SNMP asks each host found, over SNMP v2c (UDP port 161), for sysDescr,
// sysName and Printer-MIB's prtGeneralSerialNumber in one GET, and for the
// first ifPhysAddress rows in one GETBULK. One request of each per
// community, no retries. gosnmp decodes the replies (at most 64 KiB,
// gosnmp's receive buffer); a reply that does not decode is logged and
// the host keeps what other sources found.
type SNMP struct {
	// Communities to try, in order; nil means "public".
	Communities []string
	// Port; 0 means 161.
	Port uint16
}

// Name implements Source.
func (*SNMP) Name() string { return "snmp" }

// Discover implements Source.
func (s *SNMP) Discover(ctx context.Context, sc *Scan) error {
	comms := s.Communities
	if len(comms) == 0 {
		comms = []string{"public"}
	}
	port := s.Port
	if port == 0 {
		port = 161
	}
	sc.Each(ctx, sc.Hosts(), func(ctx context.Context, a netip.Addr) {
		for _, c := range comms {
			d, err := s.query(ctx, sc, a, port, c)
			if err != nil {
				sc.Logger().Debug("snmp: no answer", "addr", a, "err", err)
				continue
			}
			sc.Report(s.Name(), d)
			return
		}
	})
	return nil
}

func (s *SNMP) query(ctx context.Context, sc *Scan, a netip.Addr, port uint16, community string) (proto.Discovered, error) {
	d := proto.Discovered{Addr: a.String()}
	if err := sc.Wait(ctx); err != nil {
		return d, err
	}
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout())
	defer cancel()
	g := &gosnmp.GoSNMP{
		Target: a.String(), Port: port, Transport: "udp", Community: community, Version: gosnmp.Version2c,
		Timeout: sc.Timeout(), Retries: 0, MaxOids: 4, Context: ctx, Control: sc.control,
	}
	bad := &snmpLog{}
	g.Logger = gosnmp.NewLogger(bad)
	defer func() {
		if n := bad.errors.Load(); n > 0 {
			sc.Logger().Info("snmp: replies that did not decode were dropped", "addr", a, "count", n, "first", bad.first.Load())
		}
	}()
	if err := g.Connect(); err != nil {
		return d, fmt.Errorf("snmp %s: %w", a, err)
	}
	defer g.Conn.Close()
	res, err := g.Get([]string{OIDSysDescr, OIDSysName, OIDPrtGeneralSerialNumber})
	if err != nil {
		if ctx.Err() == nil && !isNoAnswer(err) {
			sc.Logger().Info("snmp: reply refused", "addr", a, "err", err)
		}
		return d, fmt.Errorf("snmp get %s: %w", a, err)
	}
	for _, v := range res.Variables {
		text, ok := octets(v)
		if !ok {
			continue
		}
		switch strings.TrimPrefix(v.Name, ".") {
		case OIDSysDescr:
			d.Description = text
		case OIDSysName:
			d.Hostname = text
		case OIDPrtGeneralSerialNumber:
			d.Serial = strings.TrimSpace(text)
		}
	}
	if err := sc.Wait(ctx); err == nil {
		if bulk, err := g.GetBulk([]string{OIDIfPhysAddress}, 0, maxIfRows); err == nil {
			for _, v := range bulk.Variables {
				if !strings.HasPrefix(strings.TrimPrefix(v.Name, "."), OIDIfPhysAddress+".") {
					break // past the column
				}
				if b, ok := v.Value.([]byte); ok && len(b) == 6 && !allZero(b) {
					d.MAC = net.HardwareAddr(b).String()
					break
				}
			}
		}
	}
	return d, nil
}

// snmpLog counts gosnmp's "ERROR …" lines (one per reply that does not
// decode) so the agent logs one line per host, not one per packet.
type snmpLog struct {
	errors atomic.Int64
	first  atomic.Value // string
}

func (l *snmpLog) Print(v ...any) { l.line(fmt.Sprint(v...)) }

func (l *snmpLog) Printf(format string, v ...any) { l.line(fmt.Sprintf(format, v...)) }

func (l *snmpLog) line(s string) {
	if strings.HasPrefix(s, "ERROR") && l.errors.Add(1) == 1 {
		l.first.Store(clean(s, 200))
	}
}

func isNoAnswer(err error) bool {
	s := err.Error()
	return strings.Contains(s, "timeout") || strings.Contains(s, "refused")
}

func octets(v gosnmp.SnmpPDU) (string, bool) {
	if v.Type != gosnmp.OctetString {
		return "", false
	}
	b, ok := v.Value.([]byte)
	if !ok {
		return "", false
	}
	return clean(string(b), proto.MaxText), true
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
