package demodevice

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strconv"
	"strings"
)

// The EWS console (/ews) is a page shaped like a real embedded web
// server's start page, for the page-load figures of the bench (issue 21):
// 40 subresources with the dependency chains such pages have, every one
// sent with Cache-Control: no-store (as most EWS do), so that each load
// fetches all of them:
//
//   - EWSStyles stylesheets in the head, each naming EWSStyleImages
//     background images (found only once the stylesheet is parsed);
//   - EWSScripts deferred scripts;
//   - EWSImages <img> elements;
//   - EWSPolls JSON requests made one after the other by the first script
//     (status, then polls that each wait for the one before, as a page
//     that polls its device's state does); after the last one the page
//     marks "ews-ready".
const (
	EWSStyles      = 4
	EWSStyleImages = 3
	EWSScripts     = 8
	EWSImages      = 12
	EWSPolls       = 4
)

// EWSSubresources is how many subresources one load of /ews fetches.
const EWSSubresources = EWSStyles*(1+EWSStyleImages) + EWSScripts + EWSImages + EWSPolls

// ewsAssets are the console's static bodies, built once by New.
type ewsAssets struct {
	page    []byte
	styles  [EWSStyles][]byte
	scripts [EWSScripts][]byte
	images  [EWSImages + EWSStyles*EWSStyleImages][]byte
}

// buildEWS draws the console's images (noise, so PNG does not shrink them
// to nothing: 2–20 KiB, as icons and status pictures are) and writes its
// page, stylesheets and scripts.
func buildEWS() *ewsAssets {
	a := &ewsAssets{}
	for i := range a.images {
		side := 24 + 4*(i%12)
		img := image.NewNRGBA(image.Rect(0, 0, side, side))
		seed := uint32(i*7919 + 1)
		for y := range side {
			for x := range side {
				seed = seed*1664525 + 1013904223 // a fixed LCG: the same bytes every run
				img.SetNRGBA(x, y, color.NRGBA{byte(seed >> 24), byte(seed >> 16), byte(x * 5), 0xff})
			}
		}
		var buf bytes.Buffer
		enc := png.Encoder{CompressionLevel: png.BestSpeed}
		if err := enc.Encode(&buf, img); err != nil {
			panic(err) // encoding an in-memory image to a buffer cannot fail
		}
		a.images[i] = buf.Bytes()
	}
	// Stylesheets and scripts of a few KiB each, padded with comments as
	// minified vendor code would be.
	pad := func(n int) string { return strings.Repeat("/* padding of a vendor bundle */\n", n) }
	for i := range a.styles {
		var b strings.Builder
		for j := range EWSStyleImages {
			fmt.Fprintf(&b, ".ews-bg-%d-%d { width: 32px; height: 32px; display: inline-block; background: url(/ews/img/%d.png); }\n",
				i, j, EWSImages+i*EWSStyleImages+j)
		}
		b.WriteString(pad(40 + 30*i))
		a.styles[i] = []byte(b.String())
	}
	for i := range a.scripts {
		body := fmt.Sprintf("window.ewsScripts = (window.ewsScripts || 0) + 1;\n%s", pad(80+40*i))
		if i == 0 {
			// The first script polls: status, then each poll after the one before.
			body = fmt.Sprintf(`(async () => {
  let last = null;
  for (let i = 0; i < %d; i++) {
    const r = await fetch(i === 0 ? '/ews/api/status' : '/ews/api/poll?n=' + i, { cache: 'no-store' });
    last = await r.json();
    document.getElementById('ews-state').textContent = last.state + ' #' + i;
  }
  performance.mark('ews-ready');
})();
`, EWSPolls) + body
		}
		a.scripts[i] = []byte(body)
	}
	var b strings.Builder
	b.WriteString("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>EWS console</title>\n")
	for i := range EWSStyles {
		fmt.Fprintf(&b, "<link rel=\"stylesheet\" href=\"/ews/css/%d.css\">\n", i)
	}
	for i := range EWSScripts {
		fmt.Fprintf(&b, "<script defer src=\"/ews/js/%d.js\"></script>\n", i)
	}
	b.WriteString("</head><body><h1>Porthole LaserJet 4000</h1><p id=\"ews-state\">loading</p>\n")
	for i := range EWSStyles {
		for j := range EWSStyleImages {
			fmt.Fprintf(&b, "<span class=\"ews-bg-%d-%d\"></span>", i, j)
		}
	}
	b.WriteString("\n<div>")
	for i := range EWSImages {
		fmt.Fprintf(&b, "<img src=\"/ews/img/%d.png\" alt=\"\" width=\"32\" height=\"32\">", i)
	}
	b.WriteString("</div>\n")
	b.WriteString(strings.Repeat("<p>Tray 1: Letter, plain paper. Tray 2: A4, plain paper. Toner: 64%.</p>\n", 40))
	b.WriteString("</body></html>\n")
	a.page = []byte(b.String())
	return a
}

func (d *Device) ewsRoutes(mux *http.ServeMux) {
	send := func(w http.ResponseWriter, ctype string, body []byte) {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}
	index := func(w http.ResponseWriter, r *http.Request, name string, n int) (int, bool) {
		i, err := strconv.Atoi(strings.TrimSuffix(r.PathValue("file"), name))
		if err != nil || i < 0 || i >= n {
			http.NotFound(w, r)
			return 0, false
		}
		return i, true
	}
	mux.HandleFunc("GET /ews", func(w http.ResponseWriter, r *http.Request) {
		send(w, "text/html; charset=utf-8", d.ews.page)
	})
	mux.HandleFunc("GET /ews/css/{file}", func(w http.ResponseWriter, r *http.Request) {
		if i, ok := index(w, r, ".css", EWSStyles); ok {
			send(w, "text/css", d.ews.styles[i])
		}
	})
	mux.HandleFunc("GET /ews/js/{file}", func(w http.ResponseWriter, r *http.Request) {
		if i, ok := index(w, r, ".js", EWSScripts); ok {
			send(w, "text/javascript", d.ews.scripts[i])
		}
	})
	mux.HandleFunc("GET /ews/img/{file}", func(w http.ResponseWriter, r *http.Request) {
		if i, ok := index(w, r, ".png", len(d.ews.images)); ok {
			send(w, "image/png", d.ews.images[i])
		}
	})
	mux.HandleFunc("GET /ews/api/{what}", func(w http.ResponseWriter, r *http.Request) {
		send(w, "application/json", []byte(fmt.Sprintf(`{"state":"ready","what":%q,"pages":%d}`, r.PathValue("what"), d.stats.Requests.Load())))
	})
}
