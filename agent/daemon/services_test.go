package daemon

import (
	"context"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

func TestDeviceServicesNormalize(t *testing.T) {
	web := func(port int, scheme string) proto.Service {
		return proto.Service{Kind: proto.ServiceWeb, Port: port, Scheme: scheme}
	}
	ssh := proto.Service{Kind: proto.ServiceSSH, Port: 22}
	vnc := proto.Service{Kind: proto.ServiceVNC, Port: 5900}
	tests := []struct {
		name     string
		in       DeviceConfig
		services []proto.Service
		httpPort int
		ports    []int
		err      string
	}{
		{name: "older form, defaults", in: DeviceConfig{ID: "p", Address: "10.0.0.1"},
			services: []proto.Service{web(80, "http")}, httpPort: 80, ports: []int{80}},
		{name: "older form, https and ports", in: DeviceConfig{ID: "p", Address: "10.0.0.1", Scheme: "https", Ports: []int{443, 22, 5900, 9100}},
			services: []proto.Service{web(443, "https"), ssh, vnc, {Kind: proto.ServiceTCP, Port: 9100}}, httpPort: 443, ports: []int{443, 22, 5900, 9100}},
		{name: "ssh and vnc only", in: DeviceConfig{ID: "g", Address: "10.0.0.1", Services: []proto.Service{ssh, vnc}},
			services: []proto.Service{ssh, vnc}, httpPort: 0, ports: []int{22, 5900}},
		{name: "web defaults to http", in: DeviceConfig{ID: "g", Address: "10.0.0.1", Services: []proto.Service{{Kind: proto.ServiceWeb, Port: 8080}, ssh}},
			services: []proto.Service{web(8080, "http"), ssh}, httpPort: 8080, ports: []int{8080, 22}},
		{name: "no services at all", in: DeviceConfig{ID: "g", Address: "10.0.0.1", Services: []proto.Service{}, Expect: deviceid.Expect{MAC: "02:00:00:00:00:01"}},
			services: []proto.Service{}, httpPort: 0},
		{name: "both forms", in: DeviceConfig{ID: "g", Address: "10.0.0.1", HTTPPort: 80, Services: []proto.Service{ssh}}, err: "not both"},
		{name: "two web services", in: DeviceConfig{ID: "g", Address: "10.0.0.1", Services: []proto.Service{web(80, ""), web(81, "")}}, err: "more than one web service"},
		{name: "port twice", in: DeviceConfig{ID: "g", Address: "10.0.0.1", Services: []proto.Service{ssh, {Kind: proto.ServiceTCP, Port: 22}}}, err: "port 22 declared twice"},
		{name: "unknown kind", in: DeviceConfig{ID: "g", Address: "10.0.0.1", Services: []proto.Service{{Kind: "telnet", Port: 23}}}, err: "unknown service kind"},
		{name: "bad port", in: DeviceConfig{ID: "g", Address: "10.0.0.1", Services: []proto.Service{{Kind: proto.ServiceSSH, Port: 70000}}}, err: "out of range"},
		{name: "http probe without web", in: DeviceConfig{ID: "g", Address: "10.0.0.1", Services: []proto.Service{ssh},
			Expect: deviceid.Expect{Serial: "S", HTTPProbe: &deviceid.HTTPProbe{Path: "/", Pattern: "x"}}}, err: "httpProbe needs a web service"},
		{name: "pin without https", in: DeviceConfig{ID: "g", Address: "10.0.0.1", Services: []proto.Service{ssh},
			Expect: deviceid.Expect{TLSCertSHA256: strings.Repeat("ab", 32)}}, err: "needs an https web service"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.normalize()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Services, tc.services) || got.HTTPPort != tc.httpPort || !reflect.DeepEqual(got.Ports, tc.ports) {
				t.Fatalf("services %+v httpPort %d ports %v", got.Services, got.HTTPPort, got.Ports)
			}
			decl := got.declaration()
			if err := decl.Validate(); err != nil {
				t.Fatalf("declaration refused by proto: %v", err)
			}
		})
	}
}

// countingListener is a device's SSH or VNC port that counts connections.
func countingListener(t *testing.T) (int, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() { _, _ = c.Write([]byte("SSH-2.0-test\r\n")); time.Sleep(time.Second); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port, n
}

// TestServiceOnlyDeviceOpensNoConnectionToCheck: an SSH-only device is
// declared, reported healthy and opened for sessions without a single
// connection to its SSH port; the session's own connection is checked
// against the MAC address, and a changed MAC refuses it and ends the
// session.
func TestServiceOnlyDeviceOpensNoConnectionToCheck(t *testing.T) {
	port, conns := countingListener(t)
	var mac atomic.Value
	mac.Store("02:00:00:00:00:01")
	checker := &deviceid.Checker{Timeout: 2 * time.Second, Neighbor: func(netip.Addr) (net.HardwareAddr, error) {
		return net.ParseMAC(mac.Load().(string))
	}}
	dev := DeviceConfig{ID: "gw-1", Address: "127.0.0.1", Services: []proto.Service{{Kind: proto.ServiceSSH, Port: port}},
		Expect: deviceid.Expect{MAC: "02:00:00:00:00:01"}}
	var hello proto.Hello
	h := startAgentCaptureWith(t, []DeviceConfig{dev}, checker, &hello)
	if len(hello.Devices) != 1 {
		t.Fatalf("hello devices %+v", hello.Devices)
	}
	d := hello.Devices[0]
	if d.HTTPPort != 0 || len(d.Services) != 1 || d.Services[0].Kind != proto.ServiceSSH || d.Health == nil || !d.Health.Reachable {
		t.Fatalf("declared %+v health %+v", d, d.Health)
	}
	h.send(proto.TypeWelcome, "", &proto.Welcome{ID: testAgentID})
	for i := range 3 {
		id := "sesssshonly00" + string(rune('a'+i))
		env := h.open(id, "gw-1", h.grant(validGrant(id, "gw-1", time.Minute)))
		if env.Type != proto.TypeSessionReady {
			t.Fatalf("session %d: %s", i, env.Type)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("the checks opened %d connections on the SSH port", n)
	}
	s := h.agent.session("sesssshonly00a")
	if _, err := s.proxy.Handler(0); proto.CodeOf(err) != proto.CodePortNotAllowed || !strings.Contains(err.Error(), "no web page") {
		t.Fatalf("web page of an SSH-only device: %v", err)
	}
	c, err := s.proxy.DialTCP(context.Background(), port)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	testenv.Eventually(t, 5*time.Second, "the session's own connection to reach the SSH port", func() bool { return conns.Load() == 1 })
	// The address now belongs to another machine.
	mac.Store("02:00:00:00:00:66")
	_, err = s.proxy.DialTCP(context.Background(), port)
	if proto.CodeOf(err) != proto.CodeDeviceFailed || !strings.Contains(err.Error(), "02:00:00:00:00:66") {
		t.Fatalf("after the MAC changed: %v", err)
	}
	env := h.next()
	var end proto.SessionEnd
	if env.Type != proto.TypeSessionEnd || env.Session != "sesssshonly00a" || proto.DecodeData(env, &end) != nil || !strings.Contains(end.Message, "MAC address") {
		t.Fatalf("after the MAC changed: %s %s %+v", env.Type, env.Session, end)
	}
}
