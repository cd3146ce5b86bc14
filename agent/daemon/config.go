package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/agent/deviceproxy"
	"github.com/porthole-dev/porthole/proto"
)

// FileConfig is the agent's configuration file (JSON).
//
//	{
//	  "server": "https://signaling.example.com",
//	  "keyFile": "/etc/porthole/agent.key",
//	  "devices": [
//	    {"id": "printer-1", "name": "Front desk printer", "scheme": "http",
//	     "address": "192.168.1.20", "httpPort": 80, "ports": [80, 443, 9100],
//	     "mac": "00:1b:a9:12:34:56", "serial": "CNB1234567",
//	     "snmp": {"version": "2c", "community": "public"}}
//	  ]
//	}
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
}

// DeviceConfig declares one device the agent may reach. Nothing else on the
// site's network is reachable through the agent.
type DeviceConfig struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	Scheme     string `json:"scheme,omitempty"` // http (default) or https
	Address    string `json:"address"`          // IP address or host name
	HTTPPort   int    `json:"httpPort,omitempty"`
	Ports      []int  `json:"ports,omitempty"` // further TCP ports that may be forwarded
	HostHeader string `json:"hostHeader,omitempty"`
	// InsecureSkipVerify accepts any TLS certificate from an https device
	// and pins none. Without it (and without tlsCertSha256), a
	// certificate that does not verify with the system's CAs is pinned at
	// first use (checkDevice).
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
	// Expect is the identity checked before every session: mac, serial
	// (with snmp or httpProbe) and tlsCertSha256, inline in the device's
	// JSON object.
	deviceid.Expect
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
	return &fc, nil
}

// normalize fills defaults and checks a device declaration.
func (d DeviceConfig) normalize() (DeviceConfig, error) {
	if !proto.ValidID(d.ID) {
		return d, fmt.Errorf("device %q: id must be letters, digits, '.', '_', ':' or '-'", d.ID)
	}
	if d.Address == "" {
		return d, fmt.Errorf("device %s: address is required", d.ID)
	}
	switch d.Scheme {
	case "":
		d.Scheme = "http"
	case "http", "https":
	default:
		return d, fmt.Errorf("device %s: scheme must be http or https", d.ID)
	}
	if d.HTTPPort == 0 {
		d.HTTPPort = 80
		if d.Scheme == "https" {
			d.HTTPPort = 443
		}
	}
	if d.HTTPPort < 1 || d.HTTPPort > 65535 {
		return d, fmt.Errorf("device %s: httpPort out of range", d.ID)
	}
	ports := []int{d.HTTPPort}
	for _, p := range d.Ports {
		if p < 1 || p > 65535 {
			return d, fmt.Errorf("device %s: port %d out of range", d.ID, p)
		}
		if p != d.HTTPPort {
			ports = append(ports, p)
		}
	}
	d.Ports = ports
	if err := d.Expect.Validate(); err != nil {
		return d, fmt.Errorf("device %s: %w", d.ID, err)
	}
	if d.TLSCertSHA256 != "" && d.Scheme != "https" {
		return d, fmt.Errorf("device %s: tlsCertSha256 needs scheme https", d.ID)
	}
	return d, nil
}

func (d DeviceConfig) proxyDevice() deviceproxy.Device {
	return deviceproxy.Device{
		ID:                 d.ID,
		Scheme:             d.Scheme,
		Host:               d.Address,
		HTTPPort:           d.HTTPPort,
		Ports:              d.Ports,
		HostHeader:         d.HostHeader,
		InsecureSkipVerify: d.InsecureSkipVerify,
	}
}

func (d DeviceConfig) declaration() proto.Device {
	return proto.Device{ID: d.ID, Name: d.Name, Ports: d.Ports, HTTPPort: d.HTTPPort, Scheme: d.Scheme}
}
