package discovery

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/netip"
	"strings"

	"golang.org/x/net/html"

	"github.com/porthole-dev/porthole/proto"
)

// HTTPTitle fetches "/" from every web port a host was found with (the
// sweep's 80 and 443, mDNS's _http._tcp) and reports the page's <title>.
// It reads at most Config.MaxReply bytes of the page, follows no
// redirect, and over https accepts any certificate (it learns a title,
// not an identity: sessions check identity themselves).
type HTTPTitle struct{}

// Name implements Source.
func (*HTTPTitle) Name() string { return "http" }

// Discover implements Source.
func (h *HTTPTitle) Discover(ctx context.Context, sc *Scan) error {
	sc.Each(ctx, sc.Hosts(), func(ctx context.Context, a netip.Addr) {
		d, _ := sc.Device(a)
		for _, s := range d.Services {
			if s.Kind != proto.ServiceWeb {
				continue
			}
			title, err := h.title(ctx, sc, netip.AddrPortFrom(a, uint16(s.Port)), s.Scheme) //nolint:gosec // validated port
			if err != nil {
				sc.Logger().Debug("http: no title", "addr", a, "port", s.Port, "err", err)
				continue
			}
			s.Title = title
			sc.Report(h.Name(), proto.Discovered{Addr: a.String(), Services: []proto.DiscoveredService{s}})
		}
	})
	return nil
}

func (h *HTTPTitle) title(ctx context.Context, sc *Scan, ap netip.AddrPort, scheme string) (string, error) {
	if err := sc.Wait(ctx); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout())
	defer cancel()
	if scheme != "https" {
		scheme = "http"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+ap.String()+"/", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", "porthole-agent discovery")
	c := probeClient(sc, ap)
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // a title, not an identity
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	return ParseTitle(io.LimitReader(resp.Body, sc.MaxReply())), nil
}

// ParseTitle returns the text of the first <title> element in an HTML
// document read from r, cleaned and cut to proto.MaxShortText; "" if
// there is none.
func ParseTitle(r io.Reader) string {
	z := html.NewTokenizer(r)
	z.SetMaxBuf(64 << 10)
	for {
		switch z.Next() {
		case html.ErrorToken:
			return ""
		case html.StartTagToken:
			name, _ := z.TagName()
			if string(name) != "title" {
				continue
			}
			var b strings.Builder
			for z.Next() == html.TextToken && b.Len() < 4*proto.MaxShortText {
				b.Write(z.Text())
			}
			return clean(b.String(), proto.MaxShortText)
		}
	}
}
