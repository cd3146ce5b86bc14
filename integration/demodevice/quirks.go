package demodevice

import (
	"crypto/md5" //nolint:gosec // Digest auth as devices do it
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// Quirks of real embedded web servers, each a profile of the demo device
// that the compatibility tests click through (issue 13). Every one is
// something a real EWS does:
//
//	GET  /quirks/                 index of the profiles
//	GET  /cgi-bin/status.cgi      HTML from a CGI that prints no Content-Type
//	GET  /cgi-bin/counters.cgi    plain text without Content-Type
//	GET  /cgi-bin/logo.cgi        a GIF without Content-Type
//	GET  /quirks/absolute         a page naming its own address, hostname and mDNS name in links,
//	                              images, a stylesheet, a script, a form and a fetch; absolute.css,
//	                              absolute.js and links.json do the same (JSON-escaped)
//	GET  /quirks/refresh          a meta refresh to its own absolute URL
//	GET  /quirks/frameset         a frameset EWS: navigation frame, main frame, target=_blank and
//	                              window.open to its own pages
//	GET  /quirks/ws               a live status page on a WebSocket (subprotocol status.v2)
//	GET  /ws/status               the WebSocket: counters every 500 ms, echoes what it gets;
//	                              refuses a foreign Origin (403) as devices do against CSWSH
//	ANY  /quirks/digest/          HTTP Digest (MD5, qop=auth), the service credentials
//	GET  /quirks/post-login       a form whose POST meets the device's Basic login (401)
//	POST /quirks/post-login       needs Basic auth; echoes the field it got
//	GET  /quirks/download         a CSV report with Content-Disposition: attachment
//	GET  /quirks/sse, /quirks/events  a page on EventSource, and the stream (an event every 300 ms)
//	GET  /quirks/runtime          a script that builds the device's URLs at run time from the bare
//	                              address, hostname and mDNS name in /quirks/where.json ("http://" + ip):
//	                              fetch, XHR, WebSocket, an image, links by setAttribute and markup,
//	                              location.href and location.assign
//	GET  /quirks/print            a report page with a Print button (window.print)
//
// Two more profiles are listeners of their own (porthole-demo-device's
// --legacy-https and --https-redirect; integration/stack's
// Options.LegacyTLS declares them as devices): LegacyTLSConfig with
// LegacyCertificate, a printer that only speaks TLS 1.0 with RSA key
// exchange on a 1024-bit, SHA-1-signed, expired self-signed certificate,
// and RedirectToHTTPS, an EWS whose http port sends everything to its
// https port.

var quirkPages = template.Must(template.New("quirks").Parse(`
{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.}}</title>
<link rel="stylesheet" href="/static/style.css"></head><body><main><h1>{{.}}</h1>{{end}}
{{define "index"}}{{template "head" "EWS quirks"}}<ul>
<li><a href="/cgi-bin/status.cgi">CGI status without Content-Type</a></li>
<li><a href="/quirks/absolute">Absolute URLs</a></li>
<li><a href="/quirks/refresh">Meta refresh</a></li>
<li><a href="/quirks/frameset">Frameset</a></li>
<li><a href="/quirks/ws">WebSocket status</a></li>
<li><a href="/quirks/digest/">Digest login</a></li>
<li><a href="/quirks/post-login">Form that meets a login</a></li>
<li><a href="/quirks/download">Download a report</a></li>
<li><a href="/quirks/sse">Live events</a></li>
<li><a href="/quirks/runtime">URLs built at run time</a></li>
<li><a href="/quirks/print">Print a report</a></li>
</ul></main></body></html>{{end}}
{{define "runtime"}}{{template "head" "URLs built at run time"}}
<p>API: <span id="api">…</span></p><p id="xhr">…</p><p id="ws">…</p><p id="img"></p><p id="links"></p>
<p><button id="go" type="button">Supplies (location.href)</button> <button id="go-assign" type="button">Settings (location.assign)</button></p>
<p id="state">loading…</p>
<script>
(function () {
  // Like many EWS scripts: the device's address comes from its own JSON,
  // and the script puts the URL together ("http://" + ip).
  fetch("/quirks/where.json").then(function (r) { return r.json(); }).then(function (w) {
    var base = "http://" + w.ip;
    fetch(base + "/api/status").then(function (r) { return r.json(); })
      .then(function (s) { document.getElementById("api").textContent = s.serial; })
      .catch(function (e) { document.getElementById("api").textContent = "failed: " + e; });
    var x = new XMLHttpRequest();
    x.open("GET", "http://" + w.mdns + "/quirks/links.json");
    x.onload = function () { document.getElementById("xhr").textContent = "xhr " + x.status; };
    x.onerror = function () { document.getElementById("xhr").textContent = "xhr failed"; };
    x.send();
    var ws = new WebSocket("ws://" + w.name + "/ws/status");
    ws.onopen = function () { document.getElementById("ws").textContent = "ws open"; ws.close(); };
    ws.onerror = function () { document.getElementById("ws").textContent = "ws failed"; };
    var img = new Image();
    img.alt = "logo";
    img.src = base + "/logo.png";
    document.getElementById("img").appendChild(img);
    var a = document.createElement("a");
    a.id = "rt-link";
    a.setAttribute("href", "http://" + w.name + "/supplies");
    a.textContent = "Supplies (setAttribute)";
    document.getElementById("links").appendChild(a);
    document.getElementById("links").insertAdjacentHTML("beforeend", ' <a id="rt-html" href="' + base + '/settings">Settings (markup)</a>');
    document.getElementById("go").onclick = function () { location.href = base + "/supplies?from=runtime"; };
    document.getElementById("go-assign").onclick = function () { location.assign("http://" + w.mdns + "/settings?from=assign"); };
    document.getElementById("state").textContent = "ready";
  });
})();
</script></main></body></html>{{end}}
{{define "print"}}{{template "head" "Print a report"}}
<p id="report"><img src="/logo.png" alt="Porthole LaserJet" width="48" height="48"> Page counts: 48,213</p>
<p><button id="print" type="button">Print</button></p>
<p id="printed">not printed</p>
<script>
document.getElementById("print").onclick = function () {
  window.print();
  document.getElementById("printed").textContent = "print returned";
};
window.addEventListener("beforeprint", function () { document.getElementById("printed").dataset.before = "1"; });
window.addEventListener("afterprint", function () { document.getElementById("printed").dataset.after = "1"; });
</script></main></body></html>{{end}}
{{define "absolute"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Absolute URLs</title>
<link rel="stylesheet" href="http://{{.Host}}/static/style.css">
<link rel="stylesheet" href="http://{{.Host}}/quirks/absolute.css">
<script src="//{{.Host}}/quirks/absolute.js" defer></script></head>
<body><main><h1>Absolute URLs</h1>
<p><img id="logo" src="http://{{.Name}}/logo.png" alt="logo" width="32" height="32">
<img id="logo-mdns" src="http://{{.MDNS}}/logo.png" alt="logo" width="32" height="32"></p>
<p><a id="supplies" href="http://{{.Host}}/supplies">Supplies</a>
<a id="status-mdns" href="http://{{.MDNS}}/">Status</a>
<a id="offsite" href="http://example.invalid/manual.pdf">Manual (the vendor's site)</a></p>
<form id="settings" method="get" action="http://{{.Host}}/settings"><button>Settings</button></form>
<p id="api">loading…</p><p id="links">loading…</p><div id="bg" class="bg"></div>
</main></body></html>{{end}}
{{define "frameset"}}<!DOCTYPE html PUBLIC "-//W3C//DTD HTML 4.01 Frameset//EN" "http://www.w3.org/TR/html4/frameset.dtd">
<html><head><title>EWS</title></head>
<frameset cols="180,*"><frame name="nav" src="http://{{.Host}}/quirks/nav"><frame name="main" src="/"></frameset></html>{{end}}
{{define "nav"}}<!DOCTYPE html>
<html><head><title>Menu</title><link rel="stylesheet" href="/static/style.css"></head><body>
<a id="nav-supplies" href="http://{{.Host}}/supplies" target="main">Supplies</a><br>
<a id="nav-settings" href="/settings" target="main">Settings</a><br>
<a id="nav-new" href="http://{{.Host}}/quirks/absolute" target="_blank">In a new window</a><br>
<button id="nav-open" onclick="window.open('http://{{.Host}}/supplies', 'supplies')">Open supplies</button>
</body></html>{{end}}
{{define "ws"}}{{template "head" "WebSocket status"}}
<p>Pages printed: <span id="pages">…</span></p><p id="state">connecting…</p>
<script>
(function () {
  var ws = new WebSocket("ws://{{.Host}}/ws/status", ["status.v2", "status.v1"]);
  ws.binaryType = "arraybuffer";
  var state = document.getElementById("state");
  ws.onopen = function () { state.textContent = "open " + ws.protocol; ws.send("hello"); ws.send(new Uint8Array([1, 2, 3])); };
  ws.onmessage = function (e) {
    if (typeof e.data !== "string") { state.dataset.binary = String(new Uint8Array(e.data).length); return; }
    if (e.data === "echo:hello") { state.dataset.echo = "1"; return; }
    var m = JSON.parse(e.data);
    document.getElementById("pages").textContent = String(m.pages);
  };
  ws.onclose = function (e) { state.textContent = "closed " + e.code + " " + e.reason; };
  ws.onerror = function () { state.textContent = "error"; };
})();
</script></main></body></html>{{end}}
{{define "postlogin"}}{{template "head" "Job accounting"}}
<form method="post" action="/quirks/post-login"><label>Department <input name="dept" value="Sales"></label>
<button id="save">Save</button></form></main></body></html>{{end}}
{{define "sse"}}{{template "head" "Live events"}}<ol id="events"></ol>
<script>
(function () {
  var es = new EventSource("/quirks/events");
  es.onmessage = function (e) {
    var li = document.createElement("li"); li.textContent = e.data;
    document.getElementById("events").appendChild(li);
    if (document.getElementById("events").children.length >= 5) es.close();
  };
})();
</script></main></body></html>{{end}}`))

// quirkData is what the quirk templates name the device by.
type quirkData struct {
	Host string // the Host the request came with: its own address
	Name string // its hostname (with the port it is reached on, unless 80 or 443)
	MDNS string // its mDNS name (likewise)
}

func (d *Device) quirkData(r *http.Request) quirkData {
	name := strings.ToLower(d.Settings().Hostname)
	// A device on a port of its own writes it after its name too.
	port := ""
	if _, p, err := net.SplitHostPort(r.Host); err == nil && p != "80" && p != "443" {
		port = ":" + p
	}
	return quirkData{Host: r.Host, Name: name + port, MDNS: name + ".local" + port}
}

func (d *Device) quirkRoutes(mux *http.ServeMux) {
	page := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			_ = quirkPages.ExecuteTemplate(w, name, d.quirkData(r))
		}
	}
	mux.HandleFunc("GET /quirks/{$}", page("index"))
	mux.HandleFunc("GET /quirks/absolute", page("absolute"))
	mux.HandleFunc("GET /quirks/refresh", func(w http.ResponseWriter, r *http.Request) {
		// html/template refuses a dynamic URL in a meta refresh's content
		// (rightly, in general); the device writes its own Host there.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		h := template.HTMLEscapeString(r.Host)
		fmt.Fprintf(w, `<!DOCTYPE html><html><head><meta http-equiv="refresh" content="0; URL=http://%[1]s/quirks/absolute">`+
			`<title>Redirecting</title></head><body>Redirecting to <a href="http://%[1]s/quirks/absolute">the status page</a>…</body></html>`, h)
	})
	mux.HandleFunc("GET /quirks/frameset", page("frameset"))
	mux.HandleFunc("GET /quirks/nav", page("nav"))
	mux.HandleFunc("GET /quirks/ws", page("ws"))
	mux.HandleFunc("GET /quirks/sse", page("sse"))
	mux.HandleFunc("GET /quirks/runtime", page("runtime"))
	mux.HandleFunc("GET /quirks/print", page("print"))
	mux.HandleFunc("GET /quirks/where.json", func(w http.ResponseWriter, r *http.Request) {
		// Bare host names, not URLs: nothing for the agent to rewrite.
		q := d.quirkData(r)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"ip": q.Host, "name": q.Name, "mdns": q.MDNS})
	})
	mux.HandleFunc("GET /quirks/absolute.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprintf(w, ".bg { width: 32px; height: 32px; background: url(http://%s/logo.png); }\n", r.Host)
	})
	mux.HandleFunc("GET /quirks/absolute.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/javascript")
		fmt.Fprintf(w, `"use strict";
fetch("http://%[1]s/api/status").then(function (r) { return r.json(); })
  .then(function (s) { document.getElementById("api").textContent = s.serial; })
  .catch(function (e) { document.getElementById("api").textContent = "failed: " + e; });
fetch("http://%[1]s/quirks/links.json").then(function (r) { return r.json(); })
  .then(function (l) { return fetch(l.supplies); })
  .then(function (r) { document.getElementById("links").textContent = "links " + r.status; })
  .catch(function (e) { document.getElementById("links").textContent = "failed: " + e; });
`, r.Host)
	})
	mux.HandleFunc("GET /quirks/links.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// encoding/json would not escape '/', but many embedded servers'
		// JSON writers do.
		fmt.Fprintf(w, `{"supplies":"http:\/\/%s\/supplies","status":"\/\/%s\/"}`, r.Host, d.quirkData(r).MDNS)
	})
	mux.HandleFunc("GET /cgi-bin/status.cgi", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // a CGI that prints no type; net/http would sniff one
		fmt.Fprintf(w, "<HTML><HEAD><TITLE>Status</TITLE></HEAD><BODY><H1 id=\"cgi\">Ready</H1>"+
			"<IMG SRC=\"/cgi-bin/logo.cgi\"><PRE>%s</PRE></BODY></HTML>\n", d.cfg.Serial)
	})
	mux.HandleFunc("GET /cgi-bin/counters.cgi", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		fmt.Fprintf(w, "pages=%d\nuptime=%d\n", 12345+d.stats.Requests.Load(), int(time.Since(d.started).Seconds()))
	})
	mux.HandleFunc("GET /cgi-bin/logo.cgi", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		_, _ = w.Write(gif1x1)
	})
	mux.HandleFunc("GET /ws/status", d.handleStatusSocket)
	mux.HandleFunc("/quirks/digest/", d.handleDigest)
	mux.HandleFunc("GET /quirks/post-login", page("postlogin"))
	mux.HandleFunc("POST /quirks/post-login", func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || !equal(user, d.cfg.BasicUser) || !equal(pass, d.cfg.BasicPass) {
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
			w.Header().Set("WWW-Authenticate", `Basic realm="Job accounting"`)
			http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><title>Saved</title><p id="saved">saved: %s</p>`, template.HTMLEscapeString(r.PostFormValue("dept")))
	})
	// A preference cookie the page's scripts read, set by one page and
	// deleted by another (Max-Age=0), as an EWS's "reset display" does.
	mux.HandleFunc("GET /quirks/cookie/{action}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("action") {
		case "set":
			http.SetCookie(w, &http.Cookie{Name: "ews_theme", Value: "dark", Path: "/"})
		case "clear":
			http.SetCookie(w, &http.Cookie{Name: "ews_theme", Value: "", Path: "/", MaxAge: -1})
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, `<!DOCTYPE html><title>Display</title><p id="cookie">%s</p><script>document.getElementById("cookie").dataset.seen = document.cookie;</script>`,
			template.HTMLEscapeString(r.PathValue("action")))
	})
	mux.HandleFunc("GET /quirks/download", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("Content-Disposition", `attachment; filename="usage-report.csv"`)
		fmt.Fprintf(w, "date,pages\n2026-01-01,120\n2026-01-02,98\n")
	})
	mux.HandleFunc("GET /quirks/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		fl, _ := w.(http.Flusher)
		for i := 0; ; i++ {
			fmt.Fprintf(w, "id: %d\ndata: {\"pages\":%d}\n\n", i, 12345+i)
			if fl != nil {
				fl.Flush()
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	})
}

// gif1x1 is a transparent 1×1 GIF.
var gif1x1 = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

// handleStatusSocket is the device's live status WebSocket.
func (d *Device) handleStatusSocket(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{
		Subprotocols: []string{"status.v2", "status.v1"},
		CheckOrigin: func(r *http.Request) bool {
			o := r.Header.Get("Origin")
			ok := o == "" || o == "http://"+r.Host || o == "https://"+r.Host
			if !ok {
				d.log.Info("demo device: websocket from a foreign origin refused", "origin", o)
			}
			return ok
		},
	}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetReadLimit(1 << 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if typ == websocket.TextMessage {
				msg = append([]byte("echo:"), msg...)
			}
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if c.WriteMessage(typ, msg) != nil {
				return
			}
		}
	}()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-done:
			return
		case <-t.C:
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"pages":%d,"state":"ready"}`, 12345+i))) != nil {
			return
		}
	}
}

// handleDigest is an HTTP Digest area (RFC 7616, MD5, qop=auth) with the
// service credentials, as many printers protect their service menu.
func (d *Device) handleDigest(w http.ResponseWriter, r *http.Request) {
	const realm = "Service Menu"
	if p := parseDigest(r.Header.Get("Authorization")); p != nil && p["username"] == d.cfg.BasicUser && p["realm"] == realm && p["uri"] == r.URL.RequestURI() {
		ha1 := md5hex(d.cfg.BasicUser + ":" + realm + ":" + d.cfg.BasicPass)
		ha2 := md5hex(r.Method + ":" + p["uri"])
		want := md5hex(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":" + p["qop"] + ":" + ha2)
		if p["qop"] == "auth" && equal(p["response"], want) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!DOCTYPE html><title>Service menu</title><h1 id="digest">Service menu for %s</h1><a href="/quirks/digest/counters">Counters</a>`,
				template.HTMLEscapeString(p["username"]))
			return
		}
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Digest realm=%q, qop="auth", nonce="%x", opaque="5ccc069c403ebaf9f0171e9517f40e41", algorithm=MD5`, realm, nonce))
	http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s)) //nolint:gosec // Digest auth
	return hex.EncodeToString(h[:])
}

// parseDigest parses a Digest Authorization value's parameters.
func parseDigest(v string) map[string]string {
	rest, ok := strings.CutPrefix(v, "Digest ")
	if !ok {
		return nil
	}
	p := map[string]string{}
	for len(rest) > 0 {
		rest = strings.TrimLeft(rest, " ,")
		k, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		var val string
		if strings.HasPrefix(after, `"`) {
			end := strings.IndexByte(after[1:], '"')
			if end < 0 {
				return nil
			}
			val, rest = after[1:1+end], after[2+end:]
		} else {
			end := strings.IndexByte(after, ',')
			if end < 0 {
				end = len(after)
			}
			val, rest = after[:end], after[end:]
		}
		p[strings.TrimSpace(k)] = val
	}
	return p
}

// LegacyTLSConfig is the TLS of an old printer: TLS 1.0 only, RSA key
// exchange with AES-128-CBC-SHA only, with cert (make it a 1024-bit,
// SHA-1-signed one to be faithful). Serve the device's handler with it.
func LegacyTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{ //nolint:gosec // deliberately old: a legacy device
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS10,
		MaxVersion:   tls.VersionTLS10,
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA},
	}
}

// LegacyCertificate makes the certificate an old printer carries: a
// self-signed, 1024-bit RSA key, signed with SHA-1, expired yesterday, for
// 127.0.0.1 and the demo device's default hostname.
func LegacyCertificate() (tls.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // deliberately weak: a legacy device
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("demo device: legacy key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: strings.ToLower(DefaultHostname), Organization: []string{DefaultModel}},
		NotBefore:             now.Add(-10 * 365 * 24 * time.Hour),
		NotAfter:              now.Add(-24 * time.Hour),
		SignatureAlgorithm:    x509.SHA1WithRSA,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{strings.ToLower(DefaultHostname)},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("demo device: legacy certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// RedirectToHTTPS is the http port of an EWS that only serves https: every
// request is sent (301) to the same path on its own address's httpsPort.
func RedirectToHTTPS(httpsPort int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		hp := net.JoinHostPort(host, strconv.Itoa(httpsPort))
		if httpsPort == 443 {
			hp = strings.TrimSuffix(hp, ":443")
		}
		target := "https://" + hp + r.URL.RequestURI()
		http.Redirect(w, r, target, http.StatusMovedPermanently)
	})
}
