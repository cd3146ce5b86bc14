package integration

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/integration/demodevice"
	"github.com/porthole-dev/porthole/integration/netlab"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// TestDeviceIdentityInNamespaces: a printer namespace whose interface has a
// fixed MAC serves the demo EWS and a real snmpd answering the serial; the
// agent's check passes. Then the printer's address moves to another
// machine with another MAC, and the check refuses the session saying so.
func TestDeviceIdentityInNamespaces(t *testing.T) {
	lab := netlab.New(t)
	snmpd := testenv.NeedBinary(t, "snmpd")
	const (
		printerMAC  = "02:00:00:77:00:20"
		impostorMAC = "02:00:00:77:00:30"
		serial      = "PHL-77-SERIAL"
	)
	lan := lab.Switch("lan", "10.77.0.0/24")
	agent := lab.Host("agent", lan, "10.77.0.10")
	printer := lab.Host("printer", lan, "10.77.0.20")
	impostor := lab.Host("impostor", lan, "10.77.0.30")
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("-n", printer.Namespace(), "link", "set", "eth0", "address", printerMAC)
	ip("-n", impostor.Namespace(), "link", "set", "eth0", "address", impostorMAC)

	serve := func(h *netlab.Host, addr string, d *demodevice.Device) {
		t.Helper()
		ln, err := h.Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close() })
	}
	serve(printer, "10.77.0.20:80", demodevice.New(demodevice.Config{Serial: serial, MAC: printerMAC}))

	dir := t.TempDir()
	conf := filepath.Join(dir, "snmpd.conf")
	if err := os.WriteFile(conf, []byte(`agentaddress udp:10.77.0.20:161
rocommunity s3cret 10.77.0.0/24
override .1.3.6.1.2.1.43.5.1.1.17.1 octet_str "`+serial+`"
createUser porthole SHA "authpass123" AES "privpass123"
rouser porthole priv
`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := printer.Start("snmpd", snmpd, []string{"-f", "-Lo", "-C", "-c", conf, "-p", filepath.Join(dir, "snmpd.pid")},
		"SNMP_PERSISTENT_DIR="+filepath.Join(dir, "persist"), "MIBS=")
	t.Cleanup(func() { _ = p.Stop(5 * time.Second) })

	target := deviceid.Target{Device: "printer-1", Host: "10.77.0.20", Scheme: "http", Port: 80}
	v2c := deviceid.Expect{MAC: printerMAC, Serial: serial, SNMP: &deviceid.SNMP{Community: "s3cret"}}
	v3 := deviceid.Expect{MAC: printerMAC, Serial: serial, SNMP: &deviceid.SNMP{Version: "3", User: "porthole",
		AuthProtocol: "SHA", AuthPass: "authpass123", PrivProtocol: "AES", PrivPass: "privpass123"}}
	check := func(e deviceid.Expect) (*deviceid.Result, error) {
		var res *deviceid.Result
		var err error
		if derr := agent.Do(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err = (&deviceid.Checker{Timeout: 3 * time.Second, Dial: agent.DialContext}).Check(ctx, target, e)
			return nil
		}); derr != nil {
			t.Fatal(derr)
		}
		return res, err
	}
	// snmpd starts asynchronously: wait until it answers (bounded).
	deadline := time.Now().Add(10 * time.Second)
	var res *deviceid.Result
	var err error
	for {
		res, err = check(v2c)
		if err == nil || time.Now().After(deadline) || !strings.Contains(err.Error(), "snmp") {
			break
		}
	}
	if err != nil {
		t.Fatalf("the real printer failed its check: %v\n%s", err, p.Tail(20))
	}
	if res.MAC != printerMAC || res.Serial != serial {
		t.Fatalf("result %+v", res)
	}
	if _, err := check(v3); err != nil {
		t.Fatalf("SNMPv3 authPriv: %v", err)
	}

	// DHCP hands the printer's address to another machine.
	ip("-n", printer.Namespace(), "addr", "del", "10.77.0.20/24", "dev", "eth0")
	ip("-n", impostor.Namespace(), "addr", "add", "10.77.0.20/24", "dev", "eth0")
	serve(impostor, "10.77.0.20:80", demodevice.New(demodevice.Config{Serial: "IMPOSTOR", MAC: impostorMAC}))
	// The agent's neighbour entry ages out as it would in the hours a
	// lease change takes; flushing it stands in for the wait.
	ip("-n", agent.Namespace(), "neigh", "flush", "all")

	_, err = check(v2c)
	var m *deviceid.Mismatch
	if !errors.As(err, &m) || m.What != "MAC address" || m.Got != impostorMAC || proto.CodeOf(err) != proto.CodeDeviceFailed {
		t.Fatalf("after the address moved: %v", err)
	}
	if !strings.Contains(err.Error(), impostorMAC) || !strings.Contains(err.Error(), printerMAC) {
		t.Fatalf("the reason does not name both MACs: %v", err)
	}
	// Serial alone catches it too (the impostor runs no snmpd: no answer).
	if _, err := check(deviceid.Expect{Serial: serial, HTTPProbe: &deviceid.HTTPProbe{Path: "/api/status", Pattern: `"serial":\s*"([^"]+)"`}}); !errors.As(err, &m) || m.What != "serial number" {
		t.Fatalf("serial over HTTP after the move: %v", err)
	}
}
