package deviceid

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/porthole-dev/porthole/proto"
)

// snmpResponder answers v2c GET requests for one OID on loopback: the
// smallest SNMP agent that tests need, built from gosnmp's own encoder.
func snmpResponder(t *testing.T, community, oid, value string) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		dec := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Logger: gosnmp.NewLogger(nil)}
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req, err := dec.SnmpDecodePacket(buf[:n])
			if err != nil || req.Community != community || req.PDUType != gosnmp.GetRequest {
				continue // a wrong community gets no answer, as real agents do
			}
			resp := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, Community: community, PDUType: gosnmp.GetResponse,
				RequestID: req.RequestID}
			for _, v := range req.Variables {
				name := strings.TrimPrefix(v.Name, ".")
				if name == oid {
					resp.Variables = append(resp.Variables, gosnmp.SnmpPDU{Name: v.Name, Type: gosnmp.OctetString, Value: []byte(value)})
				} else {
					resp.Variables = append(resp.Variables, gosnmp.SnmpPDU{Name: v.Name, Type: gosnmp.NoSuchObject})
				}
			}
			b, err := resp.MarshalMsg()
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = pc.WriteTo(b, from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func webDevice(t *testing.T, body string) (Target, *httptest.Server) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status" {
			fmt.Fprint(w, body)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return Target{Device: "printer-1", Host: "127.0.0.1", Scheme: "http", Port: p}, srv
}

func fixedNeighbor(mac string) func(netip.Addr) (net.HardwareAddr, error) {
	return func(netip.Addr) (net.HardwareAddr, error) { return net.ParseMAC(mac) }
}

func wantMismatch(t *testing.T, err error, what string) {
	t.Helper()
	var m *Mismatch
	if !errors.As(err, &m) || m.What != what {
		t.Fatalf("err = %v, want a %s mismatch", err, what)
	}
	if proto.CodeOf(err) != proto.CodeDeviceFailed {
		t.Fatalf("code %s, want device_failed", proto.CodeOf(err))
	}
	if !strings.Contains(err.Error(), what) {
		t.Fatalf("message %q does not say what failed", err)
	}
}

func TestSerialOverSNMP(t *testing.T) {
	target, _ := webDevice(t, "")
	port := snmpResponder(t, "s3cret", PrtGeneralSerialNumber, "CNB1234567")
	c := &Checker{}
	ok := Expect{Serial: "CNB1234567", SNMP: &SNMP{Port: port, Community: "s3cret"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	res, err := c.Check(context.Background(), target, ok)
	if err != nil {
		t.Fatal(err)
	}
	if res.Serial != "CNB1234567" || res.Addr != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("result %+v", res)
	}
	_, err = c.Check(context.Background(), target, Expect{Serial: "OTHER", SNMP: &SNMP{Port: port, Community: "s3cret"}})
	wantMismatch(t, err, "serial number")

	c.Timeout = 300 * time.Millisecond // nobody answers a wrong community
	_, err = c.Check(context.Background(), target, Expect{Serial: "CNB1234567", SNMP: &SNMP{Port: port, Community: "wrong"}})
	if err == nil || proto.CodeOf(err) == proto.CodeInternal {
		t.Fatalf("wrong community: err = %v", err)
	}
}

func TestSerialOverHTTPProbe(t *testing.T) {
	target, _ := webDevice(t, `{"model":"LaserJet","serial":"CNB1234567"}`)
	c := &Checker{}
	probe := &HTTPProbe{Path: "/status", Pattern: `"serial":"([^"]+)"`}
	if _, err := c.Check(context.Background(), target, Expect{Serial: "CNB1234567", HTTPProbe: probe}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Check(context.Background(), target, Expect{Serial: "XYZ", HTTPProbe: probe})
	wantMismatch(t, err, "serial number")
	_, err = c.Check(context.Background(), target, Expect{Serial: "XYZ", HTTPProbe: &HTTPProbe{Path: "/missing", Pattern: "x"}})
	if err == nil || errors.As(err, new(*Mismatch)) {
		t.Fatalf("missing page: err = %v", err)
	}
}

func TestMACFromNeighbourTable(t *testing.T) {
	target, _ := webDevice(t, "")
	c := &Checker{Neighbor: fixedNeighbor("02:00:00:00:00:01")}
	if _, err := c.Check(context.Background(), target, Expect{MAC: "02:00:00:00:00:01"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(context.Background(), target, Expect{MAC: "02-00-00-00-00-01"}); err != nil {
		t.Fatalf("another spelling of the same MAC: %v", err)
	}
	_, err := c.Check(context.Background(), target, Expect{MAC: "02:00:00:00:00:99"})
	wantMismatch(t, err, "MAC address")
	// Loopback has no neighbour entry: the check fails closed.
	c.Neighbor = nil
	_, err = c.Check(context.Background(), target, Expect{MAC: "02:00:00:00:00:01"})
	if !errors.Is(err, ErrNoNeighbor) || proto.CodeOf(err) != proto.CodeDeviceFailed {
		t.Fatalf("no neighbour: err = %v", err)
	}
}

func TestPinnedTLSCertificate(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(srv.Certificate().Raw)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	target := Target{Device: "printer-1", Host: "127.0.0.1", Scheme: "https", Port: p}
	c := &Checker{}
	res, err := c.Check(context.Background(), target, Expect{TLSCertSHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		t.Fatal(err)
	}
	if res.CertSHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("fingerprint %s", res.CertSHA256)
	}
	other := sha256.Sum256([]byte("another certificate"))
	_, err = c.Check(context.Background(), target, Expect{TLSCertSHA256: hex.EncodeToString(other[:])})
	wantMismatch(t, err, "TLS certificate SHA-256")

	verify, err := PinVerifier("printer-1", hex.EncodeToString(other[:]))
	if err != nil {
		t.Fatal(err)
	}
	client := srv.Client()
	client.Transport.(*http.Transport).TLSClientConfig.VerifyConnection = verify
	if _, err := client.Get(srv.URL); err == nil || !strings.Contains(err.Error(), "certificate changed") {
		t.Fatalf("pinned transport accepted another certificate: %v", err)
	}
}

func TestUnreachableDeviceFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	_, err = (&Checker{}).Check(context.Background(), Target{Device: "d", Host: "127.0.0.1", Port: port}, Expect{})
	if err == nil || proto.CodeOf(err) != proto.CodeDeviceFailed || !strings.Contains(err.Error(), "contact") {
		t.Fatalf("err = %v", err)
	}
}

func TestResolveOnceAndUnmap(t *testing.T) {
	calls := 0
	c := &Checker{Lookup: func(context.Context, string) ([]netip.Addr, error) {
		calls++
		return []netip.Addr{netip.MustParseAddr("::ffff:192.0.2.7")}, nil
	}}
	a, err := c.Resolve(context.Background(), "printer.example")
	if err != nil || a != netip.MustParseAddr("192.0.2.7") || calls != 1 {
		t.Fatalf("Resolve = %v, %v after %d lookups", a, err, calls)
	}
	for in, want := range map[string]string{"::ffff:127.0.0.1": "127.0.0.1", "[fe80::1%eth0]": "fe80::1", "10.0.0.1": "10.0.0.1"} {
		a, err := c.Resolve(context.Background(), in)
		if err != nil || a.String() != want {
			t.Fatalf("Resolve(%s) = %v, %v", in, a, err)
		}
	}
	if calls != 1 {
		t.Fatal("an address literal was looked up")
	}
}

func TestParseNeighbourTables(t *testing.T) {
	arp := []byte(`IP address       HW type     Flags       HW address            Mask     Device
10.0.0.2         0x1         0x2         02:00:00:77:00:02     *        eth0
10.0.0.3         0x1         0x0         00:00:00:00:00:00     *        eth0
`)
	if mac, err := ParseARP(arp, netip.MustParseAddr("10.0.0.2")); err != nil || mac.String() != "02:00:00:77:00:02" {
		t.Fatalf("ParseARP = %v, %v", mac, err)
	}
	if _, err := ParseARP(arp, netip.MustParseAddr("10.0.0.3")); !errors.Is(err, ErrNoNeighbor) {
		t.Fatalf("incomplete entry: %v", err)
	}
	if _, err := ParseARP(arp, netip.MustParseAddr("10.0.0.20")); !errors.Is(err, ErrNoNeighbor) {
		t.Fatalf("prefix of another address matched: %v", err)
	}
	neigh := []byte("fd00::2 dev eth0 lladdr 02:00:00:77:00:02 REACHABLE\nfd00::3 dev eth0 FAILED\n")
	if mac, err := ParseIPNeigh(neigh, netip.MustParseAddr("fd00::2")); err != nil || mac.String() != "02:00:00:77:00:02" {
		t.Fatalf("ParseIPNeigh = %v, %v", mac, err)
	}
	if _, err := ParseIPNeigh(neigh, netip.MustParseAddr("fd00::3")); !errors.Is(err, ErrNoNeighbor) {
		t.Fatalf("failed entry: %v", err)
	}
}

func TestExpectValidate(t *testing.T) {
	for name, e := range map[string]Expect{
		"bad mac":         {MAC: "zz"},
		"serial alone":    {Serial: "x"},
		"snmp no serial":  {SNMP: &SNMP{}},
		"both sources":    {Serial: "x", SNMP: &SNMP{}, HTTPProbe: &HTTPProbe{Path: "/", Pattern: "x"}},
		"bad version":     {Serial: "x", SNMP: &SNMP{Version: "1"}},
		"v3 no user":      {Serial: "x", SNMP: &SNMP{Version: "3"}},
		"priv no auth":    {Serial: "x", SNMP: &SNMP{Version: "3", User: "u", PrivProtocol: "AES"}},
		"bad auth":        {Serial: "x", SNMP: &SNMP{Version: "3", User: "u", AuthProtocol: "ROT13"}},
		"relative probe":  {Serial: "x", HTTPProbe: &HTTPProbe{Path: "status", Pattern: "x"}},
		"bad pattern":     {Serial: "x", HTTPProbe: &HTTPProbe{Path: "/", Pattern: "("}},
		"bad fingerprint": {TLSCertSHA256: "abcd"},
	} {
		if err := e.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	good := Expect{MAC: "02:00:00:00:00:01", Serial: "x", SNMP: &SNMP{Version: "3", User: "u", AuthProtocol: "sha", AuthPass: "authpass1", PrivProtocol: "aes", PrivPass: "privpass1"}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}
