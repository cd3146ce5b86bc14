package discovery

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/porthole-dev/porthole/proto"
)

// IPP asks each printer-looking host (one that mDNS listed under
// _ipp._tcp, or that has port 631 open) for its attributes with one IPP
// Get-Printer-Attributes request (RFC 8011 §4.2.5) over HTTP POST:
// printer-make-and-model, printer-uuid, printer-name and printer-info.
//
// No Go IPP library is available to this project (the module proxy it
// uses serves none), so the request and a bounded reader of the answer
// are written here from RFC 8010 §3: the reader takes at most
// Config.MaxReply bytes and maxIPPAttributes attributes, and stops at the
// first malformed length. FuzzParseIPP runs it on arbitrary input.
type IPP struct{}

// Name implements Source.
func (*IPP) Name() string { return "ipp" }

const maxIPPAttributes = 512

// Discover implements Source.
func (p *IPP) Discover(ctx context.Context, sc *Scan) error {
	var targets []netip.Addr
	for _, a := range sc.Hosts() {
		if port := p.port(sc, a); port != 0 {
			targets = append(targets, a)
		}
	}
	sc.Each(ctx, targets, func(ctx context.Context, a netip.Addr) {
		port := p.port(sc, a)
		rp := sc.hint(a, "ipp.rp")
		if rp == "" {
			rp = "/ipp/print"
		}
		attrs, err := p.query(ctx, sc, netip.AddrPortFrom(a, uint16(port)), rp) //nolint:gosec // port from the scan, checked
		if err != nil {
			sc.Logger().Info("ipp: Get-Printer-Attributes failed", "addr", a, "port", port, "err", err)
			return
		}
		d := proto.Discovered{Addr: a.String(), Type: "printer",
			Model:    attrs["printer-make-and-model"],
			UUID:     strings.TrimPrefix(attrs["printer-uuid"], "urn:uuid:"),
			Hostname: "",
			Services: []proto.DiscoveredService{{Kind: proto.ServiceTCP, Port: port, Name: "ipp", Title: attrs["printer-info"]}},
		}
		sc.Report(p.Name(), d)
	})
	return nil
}

func (p *IPP) port(sc *Scan, a netip.Addr) int {
	if s := sc.hint(a, "ipp.port"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			return n
		}
	}
	d, _ := sc.Device(a)
	for _, s := range d.Services {
		if s.Name == "ipp" {
			return s.Port
		}
	}
	return 0
}

func (p *IPP) query(ctx context.Context, sc *Scan, ap netip.AddrPort, resource string) (map[string]string, error) {
	if err := sc.Wait(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout())
	defer cancel()
	uri := "ipp://" + ap.String() + resource
	body := EncodeGetPrinterAttributes(1, uri, "printer-make-and-model", "printer-uuid", "printer-name", "printer-info")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ap.String()+resource, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/ipp")
	resp, err := probeClient(sc, ap).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, sc.MaxReply()+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > sc.MaxReply() {
		sc.Logger().Info("ipp: reply over the size bound, read in part", "addr", ap, "bound", sc.MaxReply())
		b = b[:sc.MaxReply()]
	}
	return ParseIPP(b)
}

// probeClient is an HTTP client that dials ap and nothing else, follows no
// redirect and bounds response headers.
func probeClient(sc *Scan, ap netip.AddrPort) *http.Client {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return sc.Dial(ctx, network, ap.String()) // never where the URL or a redirect says
		},
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
		ResponseHeaderTimeout:  sc.Timeout(),
		TLSHandshakeTimeout:    sc.Timeout(),
	}
	return &http.Client{Transport: tr, Timeout: sc.Timeout(),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// IPP value and delimiter tags (RFC 8010 §3.5).
const (
	ippOperationAttributes = 0x01
	ippEndOfAttributes     = 0x03
	ippCharset             = 0x47
	ippNaturalLanguage     = 0x48
	ippURI                 = 0x45
	ippKeyword             = 0x44
	ippGetPrinterAttrs     = 0x000B
)

// EncodeGetPrinterAttributes builds an IPP/2.0 Get-Printer-Attributes
// request for printerURI asking for the named attributes.
func EncodeGetPrinterAttributes(requestID uint32, printerURI string, attrs ...string) []byte {
	var b bytes.Buffer
	b.Write([]byte{2, 0})
	_ = binary.Write(&b, binary.BigEndian, uint16(ippGetPrinterAttrs))
	_ = binary.Write(&b, binary.BigEndian, requestID)
	b.WriteByte(ippOperationAttributes)
	attr := func(tag byte, name, value string) {
		b.WriteByte(tag)
		_ = binary.Write(&b, binary.BigEndian, uint16(len(name))) //nolint:gosec // our own short names
		b.WriteString(name)
		_ = binary.Write(&b, binary.BigEndian, uint16(len(value))) //nolint:gosec // our own short values
		b.WriteString(value)
	}
	attr(ippCharset, "attributes-charset", "utf-8")
	attr(ippNaturalLanguage, "attributes-natural-language", "en")
	attr(ippURI, "printer-uri", printerURI)
	for i, a := range attrs {
		name := "requested-attributes"
		if i > 0 {
			name = "" // an additional value of the same attribute
		}
		attr(ippKeyword, name, a)
	}
	b.WriteByte(ippEndOfAttributes)
	return b.Bytes()
}

// ErrIPP is wrapped by every refusal of ParseIPP.
var ErrIPP = errors.New("malformed IPP response")

// ParseIPP reads an IPP response and returns the first value of each
// text-like attribute (tags 0x30–0x4a: octetString and the string types),
// cleaned and cut to proto.MaxShortText. A status code other than
// successful-ok (0x0000–0x00ff) is an error.
func ParseIPP(b []byte) (map[string]string, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: %d bytes", ErrIPP, len(b))
	}
	if b[0] < 1 || b[0] > 2 {
		return nil, fmt.Errorf("%w: version %d.%d", ErrIPP, b[0], b[1])
	}
	status := binary.BigEndian.Uint16(b[2:4])
	if status > 0x00ff {
		return nil, fmt.Errorf("ipp status 0x%04x", status)
	}
	out := map[string]string{}
	rest := b[8:]
	name := ""
	for n := 0; len(rest) > 0; n++ {
		if n >= maxIPPAttributes {
			return out, nil // enough read; the rest is ignored
		}
		tag := rest[0]
		rest = rest[1:]
		if tag == ippEndOfAttributes {
			return out, nil
		}
		if tag < 0x10 {
			continue // a group delimiter
		}
		if tag == 0x7f { // extension: a 4-byte tag follows (RFC 8010 §3.5.2)
			if len(rest) < 4 {
				return out, fmt.Errorf("%w: short extended tag", ErrIPP)
			}
			rest = rest[4:]
		}
		if len(rest) < 2 {
			return out, fmt.Errorf("%w: short name length", ErrIPP)
		}
		nl := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if len(rest) < nl+2 {
			return out, fmt.Errorf("%w: name past the end", ErrIPP)
		}
		if nl > 0 {
			name = string(rest[:nl])
		}
		rest = rest[nl:]
		vl := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if len(rest) < vl {
			return out, fmt.Errorf("%w: value past the end", ErrIPP)
		}
		val := rest[:vl]
		rest = rest[vl:]
		if tag >= 0x30 && tag <= 0x4a && tag != 0x34 && tag != 0x37 && name != "" && len(name) <= 128 {
			if _, seen := out[name]; !seen && len(out) < maxIPPAttributes {
				out[name] = clean(string(val), proto.MaxShortText)
			}
		}
	}
	return out, nil
}
