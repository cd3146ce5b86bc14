package discovery

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/porthole-dev/porthole/proto"
)

// clean makes what a device said into short, printable text: invalid
// UTF-8 and control characters go, space runs collapse, and the result is
// cut at max bytes on a rune boundary.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "")
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

func sanitize(d *proto.Discovered) {
	for _, p := range []*string{&d.Hostname, &d.Type, &d.Vendor, &d.Model, &d.Serial, &d.UUID} {
		*p = clean(*p, proto.MaxShortText)
	}
	d.Description = clean(d.Description, proto.MaxText)
	for i := range d.Services {
		d.Services[i].Name = clean(d.Services[i].Name, proto.MaxShortText)
		d.Services[i].Title = clean(d.Services[i].Title, proto.MaxShortText)
	}
	if len(d.Services) > proto.MaxPorts {
		d.Services = d.Services[:proto.MaxPorts]
	}
}
