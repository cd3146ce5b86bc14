package discovery

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/hashicorp/mdns"

	"github.com/porthole-dev/porthole/agent/scope"
	"github.com/porthole-dev/porthole/proto"
)

// ippResponse builds a Get-Printer-Attributes answer the way a printer
// does: a printer-attributes group of text attributes.
func ippResponse(attrs ...[3]string) []byte {
	var b bytes.Buffer
	b.Write([]byte{2, 0, 0, 0, 0, 0, 0, 1, 0x01})
	for _, a := range attrs {
		if a[0] == "group" {
			b.WriteByte(0x04)
			continue
		}
		tag := byte(0x41) // textWithoutLanguage
		if a[0] == "uri" {
			tag = 0x45
		}
		b.WriteByte(tag)
		_ = binary.Write(&b, binary.BigEndian, uint16(len(a[1])))
		b.WriteString(a[1])
		_ = binary.Write(&b, binary.BigEndian, uint16(len(a[2])))
		b.WriteString(a[2])
	}
	b.WriteByte(0x03)
	return b.Bytes()
}

func TestParseIPPReadsPrinterAttributes(t *testing.T) {
	got, err := ParseIPP(ippResponse(
		[3]string{"text", "attributes-charset", "utf-8"},
		[3]string{"group"},
		[3]string{"text", "printer-make-and-model", "Example Office 3000\x00\n"},
		[3]string{"uri", "printer-uuid", "urn:uuid:4b9a2e3c-0000-4000-8000-000000000001"},
		[3]string{"text", "", "an additional value, ignored"},
	))
	if err != nil {
		t.Fatal(err)
	}
	if got["printer-make-and-model"] != "Example Office 3000" || got["printer-uuid"] != "urn:uuid:4b9a2e3c-0000-4000-8000-000000000001" {
		t.Fatalf("%q", got)
	}
}

func TestParseIPPRefusesGarbage(t *testing.T) {
	good := ippResponse([3]string{"text", "printer-make-and-model", "X"})
	for name, b := range map[string][]byte{
		"short":         {2, 0, 0},
		"version":       append([]byte{9}, good[1:]...),
		"status":        append([]byte{2, 0, 0x04, 0x00}, good[4:]...),
		"name past end": append(good[:12:12], 0xff, 0xff),
		"value past end": func() []byte {
			c := bytes.Clone(good)
			return c[:len(c)-3]
		}(),
	} {
		if _, err := ParseIPP(b); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	// Many tiny attributes stop at the bound instead of growing the map.
	var many [][3]string
	for i := range 2000 {
		many = append(many, [3]string{"text", "a" + strings.Repeat("x", i%50) + string(rune('a'+i%26)), "v"})
	}
	got, _ := ParseIPP(ippResponse(many...))
	if len(got) > maxIPPAttributes {
		t.Fatalf("%d attributes kept", len(got))
	}
}

func TestEncodeGetPrinterAttributesParsesBack(t *testing.T) {
	b := EncodeGetPrinterAttributes(7, "ipp://10.0.0.2:631/ipp/print", "printer-uuid", "printer-name")
	if binary.BigEndian.Uint16(b[2:4]) != 0x000B || binary.BigEndian.Uint32(b[4:8]) != 7 {
		t.Fatalf("header % x", b[:8])
	}
	// A request reads like a response whose status field is the operation.
	b[2], b[3] = 0, 0
	got, err := ParseIPP(b)
	if err != nil || got["printer-uri"] != "ipp://10.0.0.2:631/ipp/print" || got["requested-attributes"] != "printer-uuid" {
		t.Fatalf("%q %v", got, err)
	}
}

func FuzzParseIPP(f *testing.F) {
	f.Add(ippResponse([3]string{"text", "printer-make-and-model", "X"}))
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _ := ParseIPP(b)
		if len(got) > maxIPPAttributes {
			t.Fatal("unbounded")
		}
		for _, v := range got {
			if len(v) > proto.MaxShortText {
				t.Fatal("value too long")
			}
		}
	})
}

func TestParseTitle(t *testing.T) {
	for in, want := range map[string]string{
		`<html><head><title>  Printer
		  Status </title></head>`: "Printer Status",
		`<TITLE>A &amp; B</TITLE>`:             "A & B",
		`<p>no title</p>`:                      "",
		`<title>` + strings.Repeat("x", 10000): strings.Repeat("x", proto.MaxShortText),
		"<title>\x00\x01ok\xff</title>":        "ok",
	} {
		if got := ParseTitle(strings.NewReader(in)); got != want {
			t.Errorf("ParseTitle(%.40q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseARPTable(t *testing.T) {
	tab := []byte(`IP address       HW type     Flags       HW address            Mask     Device
10.0.0.20        0x1         0x2         02:00:00:00:00:20     *        eth0
10.0.0.21        0x1         0x0         00:00:00:00:00:00     *        eth0
10.0.0.22        0x1         0x2         00:00:00:00:00:00     *        eth0
garbage
`)
	got := ParseARPTable(tab)
	if len(got) != 1 || got[netip.MustParseAddr("10.0.0.20")].String() != "02:00:00:00:00:20" {
		t.Fatalf("%v", got)
	}
}

// testScan is a scan of 10.0.0.0/24 with no sources, for feeding it
// findings by hand.
func testScan(t *testing.T) *Scan {
	t.Helper()
	sc, err := scope.New(scope.Config{CIDRs: []string{"10.0.0.0/24"}}, []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Scope: sc, Stages: [][]Source{}})
	if err != nil {
		t.Fatal(err)
	}
	scan := &Scan{s: s, devices: map[netip.Addr]*entry{}}
	return scan
}

func TestReportDropsFindingsOutsideTheScope(t *testing.T) {
	scan := testScan(t)
	for _, a := range []string{"10.0.1.5", "127.0.0.1", "10.0.0.1", "::ffff:10.0.2.2", "nonsense"} {
		scan.Report("test", proto.Discovered{Addr: a})
	}
	scan.Report("mdns", proto.Discovered{Addr: "::ffff:10.0.0.5", Model: "M\x00odel", Services: []proto.DiscoveredService{{Kind: proto.ServiceTCP, Port: 631, Name: "ipp"}}})
	scan.Report("http", proto.Discovered{Addr: "10.0.0.5", Services: []proto.DiscoveredService{{Kind: proto.ServiceWeb, Port: 631, Scheme: "http", Title: "t"}}})
	if scan.refused.Load() != 5 || len(scan.devices) != 1 {
		t.Fatalf("refused %d, kept %v", scan.refused.Load(), scan.Hosts())
	}
	d, _ := scan.Device(netip.MustParseAddr("10.0.0.5"))
	if d.Model != "Model" || len(d.Services) != 1 || d.Services[0].Kind != proto.ServiceWeb || d.Services[0].Title != "t" || d.Services[0].Name != "ipp" {
		t.Fatalf("%+v", d)
	}
	if guessType(&d) != "printer" {
		t.Fatalf("type %q", guessType(&d))
	}
}

// TestMDNSFloodDoesNotHideARealPrinter: a host announcing hundreds of
// instances, in scope and out of it, before the printer answers keeps at
// most mdnsPerHost of them, and the printer's late answer is still kept.
func TestMDNSFloodDoesNotHideARealPrinter(t *testing.T) {
	scan := testScan(t)
	entries := make(chan *mdns.ServiceEntry)
	done := make(chan mdnsTally)
	m := &MDNS{}
	go func() { done <- m.collect(scan, "_ipp._tcp", entries, 256) }()
	for i := range 300 {
		entries <- &mdns.ServiceEntry{Name: fmt.Sprintf("evil-%d", i), AddrV4: net.IPv4(10, 0, 0, 40), Port: 80}
		entries <- &mdns.ServiceEntry{Name: fmt.Sprintf("lo-%d", i), AddrV4: net.IPv4(127, 0, 0, 1), Port: 80}
	}
	entries <- &mdns.ServiceEntry{Name: "Office 3000", AddrV4: net.IPv4(10, 0, 0, 20), Port: 631, InfoFields: []string{"ty=Office 3000"}}
	close(entries)
	tally := <-done
	if tally.overHost != 2*(300-mdnsPerHost) || tally.overTotal != 0 {
		t.Errorf("tally %+v", tally)
	}
	d, ok := scan.Device(netip.MustParseAddr("10.0.0.20"))
	if !ok || d.Model != "Office 3000" {
		t.Fatalf("the printer's answer was lost behind the flood: %+v", d)
	}
	if p := (&IPP{}).port(scan, netip.MustParseAddr("10.0.0.20")); p != 631 {
		t.Errorf("IPP port hint %d", p)
	}
}
