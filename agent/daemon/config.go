package daemon

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/deviceproxy"
	"github.com/porthole-dev/porthole/agent/egress"
	"github.com/porthole-dev/porthole/agent/scope"
	"github.com/porthole-dev/porthole/proto"
)

// FileConfig is the agent's configuration file (JSON).
//
//	{
//	  "server": "https://signaling.example.com",
//	  "keyFile": "/etc/porthole/agent.key",
//	  "devices": [
//	    {"id": "printer-1", "name": "Front desk printer",
//	     "address": "192.168.1.20",
//	     "services": [{"kind": "web", "port": 80, "scheme": "http"},
//	                  {"kind": "tcp", "port": 9100, "name": "raw printing"}],
//	     "mac": "00:1b:a9:12:34:56", "serial": "CNB1234567",
//	     "snmp": {"version": "2c", "community": "public"}},
//	    {"id": "gw-1", "address": "192.168.1.1", "mac": "00:1b:a9:00:00:01",
//	     "services": [{"kind": "ssh", "port": 22}, {"kind": "vnc", "port": 5900}]}
//	  ]
//	}
//
// The older form, "scheme", "httpPort" and "ports" on the device, still
// works: it declares a web service (port 80, or 443 for https, unless
// httpPort says otherwise) and a service for each further port (ssh for
// 22, vnc for 5900, tcp otherwise).
type FileConfig struct {
	Server  string         `json:"server"`
	Key     string         `json:"key,omitempty"`
	KeyFile string         `json:"keyFile,omitempty"`
	Devices []DeviceConfig `json:"devices"`
	// StateDir holds the enrollment (porthole-agent enroll); when it has
	// one, the agent uses it instead of Key. It also holds the access
	// log's spool and, in tls-pins/, the certificates of https devices
	// pinned at first use.
	StateDir string `json:"stateDir,omitempty"`
	// Region names where the site is (e.g. "eu-west"), to get the TURN
	// relays of that region first.
	Region string `json:"region,omitempty"`
	// Proxy is the site's HTTP proxy. Without this entry the agent
	// follows HTTPS_PROXY, HTTP_PROXY and NO_PROXY from its environment;
	// with it, the environment is ignored (an entry without url means
	// direct).
	Proxy *ProxyConfig `json:"proxy,omitempty"`
	// CAFile is a PEM file of CAs trusted besides the system's: for a
	// private relay certificate (TURN over TLS), an https:// proxy, or a
	// proxy that inspects TLS.
	CAFile string `json:"caFile,omitempty"`
	// Scope is the part of the site's network the agent may ever reach:
	// "scope": {"cidrs": ["192.168.1.0/24"], "ports": [80, 443, 22]}.
	// Without it, the subnets of the agent's own interfaces and ports
	// 80/443 plus the adopted devices' ports. Devices adopted in the app
	// are always checked against it; the devices above only when the file
	// declares a scope (then a device outside it stops the agent).
	Scope *scope.Config `json:"scope,omitempty"`
	// Discovery tunes the agent's scans of the scope (discover.go).
	Discovery *DiscoveryConfig `json:"discovery,omitempty"`
	// Policy is the site's own policy for every device without one of
	// its own, adopted devices included (policy.go).
	Policy *PolicyConfig `json:"policy,omitempty"`
}

// DiscoveryConfig is the agent's discovery entry:
//
//	"discovery": {"interval": "12h", "rate": 100, "snmpCommunities": ["public"]}
type DiscoveryConfig struct {
	// Off stops discovery, periodic and on demand.
	Off bool `json:"off,omitempty"`
	// Interval between periodic scans (Go duration, at least 10m);
	// "0" scans only when asked from the app. Default DefaultDiscoveryInterval.
	Interval string `json:"interval,omitempty"`
	// Rate is probes per second, all sources together (default 100).
	Rate float64 `json:"rate,omitempty"`
	// SNMPCommunities are the v2c communities tried (default "public").
	SNMPCommunities []string `json:"snmpCommunities,omitempty"`
}

// DefaultDiscoveryInterval is the time between periodic scans.
const DefaultDiscoveryInterval = 12 * time.Hour

// IntervalOrDefault parses Interval.
func (dc *DiscoveryConfig) IntervalOrDefault() (time.Duration, error) {
	if dc == nil || dc.Interval == "" {
		return DefaultDiscoveryInterval, nil
	}
	d, err := time.ParseDuration(dc.Interval)
	if err != nil {
		return 0, fmt.Errorf("agent config: discovery interval: %w", err)
	}
	if d != 0 && d < 10*time.Minute {
		return 0, fmt.Errorf("agent config: discovery interval %s: at least 10m, or 0 for scans only on demand", d)
	}
	return d, nil
}

// ProxyConfig is the agent's proxy entry:
//
//	"proxy": {"url": "http://proxy.corp:3128", "noProxy": "printers.corp,10.0.0.0/8",
//	          "username": "porthole", "passwordFile": "/etc/porthole/proxy.pass"}
//
// Everything the agent opens towards signaling and the relays goes
// through it with CONNECT: enrollment, the signaling WebSocket,
// certificate renewal and TURN over TCP or TLS. The password never
// appears in a log line or an error.
type ProxyConfig struct {
	URL          string `json:"url,omitempty"` // http://, https:// or socks5://; may hold user:password@
	NoProxy      string `json:"noProxy,omitempty"`
	Username     string `json:"username,omitempty"`
	Password     string `json:"password,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"` // read at start; takes the place of password
}

// proxyAuthHint says where the agent takes proxy credentials from.
const proxyAuthHint = `give them in the agent's configuration ("proxy": {"username": …, "passwordFile": …}) or as user:password@ in HTTPS_PROXY`

// Egress builds the agent's way out: the proxy entry if the file has one,
// else env (HTTPS_PROXY/HTTP_PROXY/NO_PROXY, as main read them).
func (fc *FileConfig) Egress(env httpproxy.Config, roots *x509.CertPool) (*egress.Egress, error) {
	cfg := egress.Config{Proxy: env, RootCAs: roots, AuthHint: proxyAuthHint}
	if p := fc.Proxy; p != nil {
		cfg.Proxy = httpproxy.Config{HTTPProxy: p.URL, HTTPSProxy: p.URL, NoProxy: p.NoProxy}
		cfg.Username, cfg.Password = p.Username, p.Password
	}
	e, err := egress.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("agent config: proxy: %w", err)
	}
	return e, nil
}

// Roots are the system's CAs plus those of CAFile, or nil (the system's)
// without one.
func (fc *FileConfig) Roots() (*x509.CertPool, error) {
	if fc.CAFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(fc.CAFile)
	if err != nil {
		return nil, fmt.Errorf("agent config: caFile: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("agent config: caFile %s holds no PEM certificate", fc.CAFile)
	}
	return pool, nil
}

// DeviceConfig declares one device the agent may reach. Nothing else on the
// site's network is reachable through the agent.
type DeviceConfig struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Address string `json:"address"` // IP address or host name
	// Services are what the device offers (web, ssh, vnc, tcp), none
	// required. Without them, the older fields below declare a web
	// service and further ports.
	Services []proto.Service `json:"services,omitempty"`
	Scheme   string          `json:"scheme,omitempty"` // older form: http (default) or https
	HTTPPort int             `json:"httpPort,omitempty"`
	Ports    []int           `json:"ports,omitempty"` // older form: further TCP ports that may be forwarded
	// HostHeader is the Host the web service is sent.
	// HTTPSPort is the declared port where an http web service serves
	// https: a device that redirects its pages there is followed inside
	// the session. 0 means 443 when 443 is declared.
	HTTPSPort  int    `json:"httpsPort,omitempty"`
	HostHeader string `json:"hostHeader,omitempty"`
	// Names are further host names the device writes into its pages
	// ("NPI4000", "npi4000.local"): its absolute URLs naming them stay in
	// the session. A host-name address adds its short name and the mDNS
	// name by itself.
	Names []string `json:"names,omitempty"`
	// InsecureSkipVerify accepts any TLS certificate from an https device
	// and pins none. Without it (and without tlsCertSha256), a
	// certificate that does not verify with the system's CAs is pinned at
	// first use (checkDevice).
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
	// Expect is the identity checked before every session: mac, serial
	// (with snmp or httpProbe) and tlsCertSha256, inline in the device's
	// JSON object.
	deviceid.Expect
	// Policy is the device's own policy; it replaces the site's
	// (policy.go).
	Policy *PolicyConfig `json:"policy,omitempty"`
	// Actions are path prefixes where a GET with a query changes the
	// device ("/cgi-bin/reset", "/print?"): the access log flags such
	// requests as changes.
	Actions []string `json:"actions,omitempty"`

	// scope, if set, bounds every dial to the device (an adopted device,
	// or the file's when the site declared a scope).
	scope *scope.Scope
}

// LoadFile reads and validates a configuration file.
func LoadFile(path string) (*FileConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	var fc FileConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return nil, fmt.Errorf("parse agent config %s: %w", path, err)
	}
	if fc.Key == "" && fc.KeyFile != "" {
		k, err := os.ReadFile(fc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("read agent key: %w", err)
		}
		fc.Key = strings.TrimSpace(string(k))
	}
	if p := fc.Proxy; p != nil && p.PasswordFile != "" {
		pw, err := os.ReadFile(p.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("read proxy password: %w", err)
		}
		p.Password = strings.TrimRight(string(pw), "\r\n")
	}
	return &fc, nil
}

// normalize fills defaults and checks a device declaration. Afterwards
// Services lists every service; Scheme and HTTPPort are the web service's
// (HTTPPort 0: the device has no web page) and Ports every declared port.
func (d DeviceConfig) normalize() (DeviceConfig, error) {
	if !proto.ValidID(d.ID) {
		return d, fmt.Errorf("device %q: id must be letters, digits, '.', '_', ':' or '-'", d.ID)
	}
	if d.Address == "" {
		return d, fmt.Errorf("device %s: address is required", d.ID)
	}
	if d.Services == nil {
		legacy, err := d.legacyServices()
		if err != nil {
			return d, err
		}
		d.Services = legacy
	} else if d.Scheme != "" || d.HTTPPort != 0 || len(d.Ports) > 0 {
		return d, fmt.Errorf("device %s: give services, or scheme/httpPort/ports, not both", d.ID)
	}
	d.Scheme, d.HTTPPort, d.Ports = "", 0, nil
	for i := range d.Services {
		sv := &d.Services[i]
		if sv.Kind == proto.ServiceWeb && sv.Scheme == "" {
			sv.Scheme = "http"
		}
		if err := sv.Validate(d.ID); err != nil {
			var pe *proto.Error
			if errors.As(err, &pe) {
				err = errors.New(pe.Message) // the code means nothing in a config file
			}
			return d, err
		}
		if slices.Contains(d.Ports, sv.Port) {
			return d, fmt.Errorf("device %s: port %d declared twice", d.ID, sv.Port)
		}
		if sv.Kind == proto.ServiceWeb {
			if d.HTTPPort != 0 {
				return d, fmt.Errorf("device %s: more than one web service", d.ID)
			}
			d.Scheme, d.HTTPPort = sv.Scheme, sv.Port
		}
		d.Ports = append(d.Ports, sv.Port)
	}
	if len(d.Services) > proto.MaxPorts {
		return d, fmt.Errorf("device %s: %d services, limit %d", d.ID, len(d.Services), proto.MaxPorts)
	}
	if d.HTTPSPort != 0 && !slices.Contains(d.Ports, d.HTTPSPort) {
		return d, fmt.Errorf("device %s: httpsPort %d must be one of its ports", d.ID, d.HTTPSPort)
	}
	if err := d.Expect.Validate(); err != nil {
		return d, fmt.Errorf("device %s: %w", d.ID, err)
	}
	for _, n := range d.Names {
		if n == "" || len(n) > 253 || strings.Trim(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]") != "" {
			return d, fmt.Errorf("device %s: name %q is not a host name", d.ID, n)
		}
	}
	if d.TLSCertSHA256 != "" && d.Scheme != "https" {
		return d, fmt.Errorf("device %s: tlsCertSha256 needs an https web service", d.ID)
	}
	if d.HTTPProbe != nil && d.HTTPPort == 0 {
		return d, fmt.Errorf("device %s: httpProbe needs a web service", d.ID)
	}
	if d.HostHeader != "" && d.HTTPPort == 0 {
		return d, fmt.Errorf("device %s: hostHeader needs a web service", d.ID)
	}
	if err := validatePolicy(d.Policy, "device "+d.ID); err != nil {
		return d, err
	}
	if len(d.Actions) > proto.MaxPathRules {
		return d, fmt.Errorf("device %s: over %d actions", d.ID, proto.MaxPathRules)
	}
	for _, p := range d.Actions {
		if !proto.ValidPathRule(p) {
			return d, fmt.Errorf("device %s: action %q must start with / and be at most %d bytes", d.ID, p, proto.MaxPathRule)
		}
	}
	return d, nil
}

// legacyServices turns the older scheme/httpPort/ports into services: the
// web page and, for each further port, ssh (22), vnc (5900) or tcp.
func (d DeviceConfig) legacyServices() ([]proto.Service, error) {
	scheme := d.Scheme
	switch scheme {
	case "":
		scheme = "http"
	case "http", "https":
	default:
		return nil, fmt.Errorf("device %s: scheme must be http or https", d.ID)
	}
	web := d.HTTPPort
	if web == 0 {
		web = defaultPort(scheme)
	}
	if web < 1 || web > 65535 {
		return nil, fmt.Errorf("device %s: httpPort out of range", d.ID)
	}
	out := []proto.Service{{Kind: proto.ServiceWeb, Port: web, Scheme: scheme}}
	for _, p := range d.Ports {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("device %s: port %d out of range", d.ID, p)
		}
		if slices.ContainsFunc(out, func(s proto.Service) bool { return s.Port == p }) {
			continue
		}
		kind := proto.ServiceTCP
		switch p {
		case 22:
			kind = proto.ServiceSSH
		case 5900:
			kind = proto.ServiceVNC
		}
		out = append(out, proto.Service{Kind: kind, Port: p})
	}
	return out, nil
}

func (d DeviceConfig) proxyDevice() deviceproxy.Device {
	return deviceproxy.Device{
		ID:                 d.ID,
		Scheme:             d.Scheme,
		Host:               d.Address,
		HTTPPort:           d.HTTPPort,
		NoWeb:              d.HTTPPort == 0,
		Ports:              d.Ports,
		HTTPSPort:          d.HTTPSPort,
		HostHeader:         d.HostHeader,
		InsecureSkipVerify: d.InsecureSkipVerify,
		Names:              d.names(),
		Control:            d.control(),
	}
}

// control is the scope's check on every dial to the device, if bounded.
func (d DeviceConfig) control() func(context.Context, string, string, syscall.RawConn) error {
	if d.scope == nil {
		return nil
	}
	return d.scope.Control
}

// names are the declared names plus, for a host-name address
// ("npi4000.lan"), its short name and mDNS name ("npi4000",
// "npi4000.local"), which EWS pages often use for themselves.
func (d DeviceConfig) names() []string {
	out := append([]string(nil), d.Names...)
	if _, err := netip.ParseAddr(d.Address); err != nil && d.Address != "" {
		out = append(out, d.Address)
		short, _, _ := strings.Cut(d.Address, ".")
		if short != "" {
			out = append(out, short, short+".local")
		}
	}
	return out
}

func (d DeviceConfig) declaration() proto.Device {
	return proto.Device{ID: d.ID, Name: d.Name, Ports: d.Ports, HTTPPort: d.HTTPPort, Scheme: d.Scheme,
		Services: slices.Clone(d.Services)}
}
