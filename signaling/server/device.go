package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/internal/redact"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/cluster"
	"github.com/porthole-dev/porthole/signaling/hub"
)

// The signaling fallback, the server's half (proto/fetch.go).
//
// A session's device origin is served by its service worker, which carries
// the page's requests over the peer connection. Whatever reaches this
// server instead — a synchronous XMLHttpRequest, /favicon.ico, a hard
// reload, a request before the worker controls the page or after it is
// gone — is carried here to the agent over the agent's own signaling
// connection, and the answer streamed back. Only the session's own
// browser may do that:
//
//   - the request must carry the device cookie (proto.DeviceCookie), which
//     this server sets, HttpOnly and SameSite=Strict, when the shell
//     redeems the single-use relay ticket of its session.ready
//     (redeemRelayTicket); its SHA-256 is kept with the session in the hub
//     of the node that owns it;
//   - and Sec-Fetch-Site must be same-origin or none: every session origin
//     is same-site with every other (and with the shell's), so SameSite
//     alone would let another session's page, or the shell, send requests
//     with this cookie.
//
// The request body is bounded (proto.MaxFetchBody, 413 above), exchanges
// per session are capped, every wait has a deadline, and the response
// flows back within a credit window: a browser that reads slowly slows the
// agent's reads from the device, it never fills a queue. Signaling
// terminates TLS here, so its operator can see these requests — and only
// these; everything else stays peer to peer.

// redeemRelayTicket answers the query of GET /__t/relay.html?t=<ticket> on
// session id's device origin: it burns the ticket and sets the device
// cookie. It reports whether the relay page may be served (the caller
// serves it); otherwise it has answered with a refusal.
func (s *Server) redeemRelayTicket(w http.ResponseWriter, r *http.Request, id string) bool {
	log := s.log.With("session", id, "remote", r.RemoteAddr)
	tk := r.URL.Query().Get("t")
	var raw [32]byte
	rand.Read(raw[:])
	secret := base64.RawURLEncoding.EncodeToString(raw[:])
	exp, err := s.sessions.RedeemTicket(r.Context(), id, tk, sha256.Sum256([]byte(secret)))
	if err != nil {
		log.Info("relay ticket refused", "code", proto.CodeOf(err), "err", err)
		status := http.StatusForbidden
		if errors.Is(err, hub.ErrNoSession) {
			status = http.StatusNotFound
		}
		s.devicePage(w, status, "This session window link does not work",
			"It was used already or has expired. Reload the Porthole session window to reach the device again.")
		return false
	}
	maxAge := int(time.Until(exp).Seconds())
	if maxAge < 1 {
		maxAge = 1
	}
	http.SetCookie(w, &http.Cookie{Name: proto.DeviceCookie, Value: secret, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	log.Info("relay frame loaded; device cookie set", "expires", exp.UTC().Format(time.RFC3339))
	return true
}

// expireDeviceCookie drops the device cookie from the browser (the end
// page: Clear-Site-Data "cookies" would clear every session's, the whole
// site's).
func expireDeviceCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: proto.DeviceCookie, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// workerScript reports whether r fetches the script of a service, shared
// or dedicated worker.
func workerScript(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Dest") {
	case "serviceworker", "sharedworker", "worker":
		return true
	}
	return r.Header.Get("Service-Worker") != ""
}

// deviceCookieValue returns the device cookie's value, "" without one.
func deviceCookieValue(r *http.Request) string {
	for _, c := range r.Cookies() {
		if c.Name == proto.DeviceCookie && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

// serveDeviceFallback carries a request to session id's device origin that
// is not under /__t/ to the device, or says why it does not.
func (s *Server) serveDeviceFallback(w http.ResponseWriter, r *http.Request, id string) {
	log := s.log.With("session", id, "method", r.Method, "target", truncate(redact.Target(r.RequestURI), 200), "remote", r.RemoteAddr)
	if workerScript(r) {
		// A worker's script never reaches the server through a service
		// worker, and this is the one the device's page must not get: its
		// own worker in place of Porthole's (web.Device answers the same).
		log.Info("device request refused: a worker script of the device", "dest", r.Header.Get("Sec-Fetch-Dest"))
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "no workers of the device on a session origin", http.StatusNotFound)
		return
	}
	secret := deviceCookieValue(r)
	if secret == "" {
		// Nothing is carried without the cookie (no request from another
		// site ever has it: SameSite=Strict). A navigation gets the page
		// that says where the device page belongs.
		log.Debug("device request without the device cookie", "dest", r.Header.Get("Sec-Fetch-Dest"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		s.noDeviceCookie(w, r)
		return
	}
	site := r.Header.Get("Sec-Fetch-Site")
	if sites := r.Header.Values("Sec-Fetch-Site"); len(sites) != 1 || site != "same-origin" && site != "none" {
		// Another session's page, the shell, or a foreign site: all are
		// refused, whatever cookie came along.
		log.Info("device request refused: not from the device's own page", "sec_fetch_site", site)
		s.devicePage(w, http.StatusForbidden, "Refused",
			"Porthole carries requests to a device page only from that page itself, not from another site or window.")
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != s.deviceOrigin(id) {
		// A browser sends its own origin with same-origin requests: this
		// one says otherwise.
		log.Info("device request refused: Origin of another site", "origin", truncate(o, 100))
		s.devicePage(w, http.StatusForbidden, "Refused",
			"Porthole carries requests to a device page only from that page itself, not from another site or window.")
		return
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		log.Info("device request refused: a WebSocket outside the session's tunnel")
		s.devicePage(w, http.StatusNotImplemented, "Not carried", "Porthole does not carry this WebSocket of the device's page.")
		return
	}
	if r.ContentLength > proto.MaxFetchBody {
		log.Info("device request refused: body too large", "bytes", r.ContentLength, "limit", proto.MaxFetchBody)
		s.devicePage(w, http.StatusRequestEntityTooLarge, "Request too large",
			fmt.Sprintf("This request carries %s; Porthole carries at most %s outside the session's peer connection (for requests the browser does not hand to the session's service worker).",
				sizeText(r.ContentLength), sizeText(proto.MaxFetchBody)))
		return
	}
	head, err := fetchHead(r, s.deviceOrigin(id))
	if err != nil {
		log.Info("device request refused", "code", proto.CodeOf(err), "err", err)
		s.devicePage(w, httpStatus(err), "Refused", "Porthole does not forward this request: "+string(proto.CodeOf(err)))
		return
	}
	start := time.Now()
	x, err := s.sessions.OpenFetch(r.Context(), id, sha256.Sum256([]byte(secret)))
	if err != nil {
		log.Info("device request refused", "code", proto.CodeOf(err), "err", err)
		s.fallbackErrorPage(w, err)
		return
	}
	defer x.Close()
	ctx := r.Context()
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex() // the request body may still come while the response starts
	if err := x.SendHead(ctx, head); err != nil {
		x.Abort(err)
		log.Info("device request not sent to the agent", "code", proto.CodeOf(err), "err", err)
		s.fallbackErrorPage(w, err)
		return
	}
	if head.ContentLength == 0 {
		// The agent may have answered already (it needs no body), and told
		// us to stop sending: the answer is what counts, so an end that
		// fails is left to Head to explain.
		_ = x.End(ctx)
	} else {
		pumped := make(chan error, 1)
		go func() { pumped <- pumpBody(ctx, x, r.Body) }()
		defer func() {
			// The handler must not return while the body is being read.
			// Closing the exchange ends a pump waiting on the agent; a
			// body the browser is still sending after the answer is cut
			// off, with its connection (a read deadline).
			x.Close()
			select {
			case <-pumped:
				return
			case <-time.After(100 * time.Millisecond):
			}
			_ = rc.SetReadDeadline(time.Now())
			<-pumped
		}()
	}

	hv, err := x.Head(ctx, proto.FetchHeadTimeout)
	if err != nil {
		x.Abort(err)
		log.Info("device request failed before its answer", "code", proto.CodeOf(err), "err", err, "after", time.Since(start).Round(time.Millisecond))
		s.fallbackErrorPage(w, err)
		return
	}
	resp := hv.(*proto.FetchResponse)
	if loc := resp.Header.Get("Location"); loc != "" && offsite(loc, r) {
		x.Abort(proto.Errorf(proto.CodeCanceled, "redirect off the device"))
		log.Info("device redirected off itself; not followed", "location", truncate(loc, 200))
		s.devicePage(w, http.StatusBadGateway, "The device sent you elsewhere",
			"The device redirected to "+truncate(loc, 200)+", which is not the device. Porthole does not follow it.")
		return
	}
	writeDeviceHead(w, resp, log)
	_ = rc.Flush() // the head now: a long poll's page waits for it
	n, err := copyBody(ctx, w, rc, x)
	if err != nil {
		x.Abort(err)
		log.Info("device response cut off", "code", proto.CodeOf(err), "err", err, "bytes", n)
		// The head is out: only a broken connection tells the browser
		// the body is incomplete.
		panic(http.ErrAbortHandler)
	}
	log.Debug("device request carried by signaling", "status", resp.Status, "bytes", n, "duration", time.Since(start).Round(time.Microsecond))
}

// pumpBody sends the request body to the agent; a body over
// proto.MaxFetchBody aborts the exchange with too_large.
func pumpBody(ctx context.Context, x *cluster.Exchange, body io.Reader) error {
	buf := make([]byte, proto.FetchChunk)
	var total int64
	for {
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			if total += int64(n); total > proto.MaxFetchBody {
				e := proto.Errorf(proto.CodeTooLarge, "request body over %s", sizeText(proto.MaxFetchBody))
				x.Abort(e)
				return e
			}
			if werr := x.Write(ctx, buf[:n]); werr != nil {
				return werr
			}
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return x.End(ctx)
		case err != nil:
			e := proto.Errorf(proto.CodeCanceled, "reading the request body: %v", err)
			x.Abort(e)
			return e
		}
	}
}

// copyBody streams the response body to the browser, flushing each chunk.
func copyBody(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController, x *cluster.Exchange) (int64, error) {
	var n int64
	for {
		p, err := x.Read(ctx)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		// A browser that stops reading fails the write after this long,
		// and meanwhile holds the agent back by its credit window.
		_ = rc.SetWriteDeadline(time.Now().Add(proto.FetchIdleTimeout))
		m, err := w.Write(p)
		n += int64(m)
		if err != nil {
			return n, proto.Errorf(proto.CodeCanceled, "the browser stopped reading: %v", err)
		}
		_ = rc.Flush()
	}
}

// fetchRequestDrop are request fields the browser sent that never reach
// the agent: framing (the exchange carries it), the agent's own choices
// (Host, Accept-Encoding), what a reverse proxy in front of signaling
// adds, and Cookie, rebuilt without signaling's own cookies. Origin and
// Referer go on with the head's ClientOrigin, the device origin: the
// agent makes them the device's own (agent/deviceproxy), as on the
// worker's path (web/session/headers.js).
var fetchRequestDrop = headerSet(proto.HopByHopHeaders(), []string{
	"Host", "Content-Length", "Cookie", "Accept-Encoding", "Service-Worker",
	"Service-Worker-Navigation-Preload", "Forwarded", "Via", "X-Real-Ip",
})

// fetchHead builds the request head the agent gets for a request to the
// device origin origin.
func fetchHead(r *http.Request, origin string) (*proto.FetchRequest, error) {
	hdr := http.Header{}
	hop := map[string]bool{}
	for _, v := range r.Header.Values("Connection") {
		for f := range strings.SplitSeq(v, ",") {
			hop[http.CanonicalHeaderKey(strings.TrimSpace(f))] = true
		}
	}
	for k, vs := range r.Header {
		switch {
		case fetchRequestDrop[k], hop[k], strings.HasPrefix(k, "Sec-"), strings.HasPrefix(k, "Proxy-"),
			strings.HasPrefix(k, "X-Forwarded-"), strings.HasPrefix(k, "X-Porthole-"):
			continue
		}
		hdr[k] = vs
	}
	var pairs []string
	for _, c := range r.Cookies() {
		if !proto.IsPortholeCookie(c.Name) {
			pairs = append(pairs, c.Name+"="+c.Value)
		}
	}
	if len(pairs) > 0 {
		hdr.Set("Cookie", strings.Join(pairs, "; "))
	}
	cl := r.ContentLength
	if r.Body == nil || r.Body == http.NoBody {
		cl = 0
	}
	h := &proto.FetchRequest{RequestHead: proto.RequestHead{Method: r.Method, Target: r.RequestURI, Header: hdr, ContentLength: cl,
		ClientOrigin: origin}}
	if len(h.Header) == 0 {
		h.Header = nil
	}
	h.ID = 1 // validated here; the exchange sets its own
	if err := h.Validate(); err != nil {
		return nil, err
	}
	if _, err := proto.EncodeHead(&h.RequestHead); err != nil {
		return nil, proto.Errorf(proto.CodeTooLarge, "request head over %d bytes", proto.MaxHead)
	}
	return h, nil
}

// responseDrop are response fields the page never gets, as on the worker's
// path (proto's shared rules, web/session/headers.js RESPONSE_DROP): the agent drops them too;
// signaling checks again, because here the answer reaches the browser's
// own cookie jar and HTTP cache, not a worker.
var responseDrop = headerSet(proto.HopByHopHeaders(), proto.DroppedDeviceResponseHeaders(), []string{
	"Content-Encoding", "Cache-Control", "Expires", "Pragma", "Service-Worker-Allowed",
})

// headerSet is the set of the canonical names in lists (proto's shared
// header rules plus this path's own).
func headerSet(lists ...[]string) map[string]bool {
	set := map[string]bool{}
	for _, l := range lists {
		for _, name := range l {
			set[http.CanonicalHeaderKey(name)] = true
		}
	}
	return set
}

// writeDeviceHead writes the device's response head with the session's
// rules: the session's CSP, no caching (nothing of the device outlives the
// session in the browser's cache), and the device's script-visible cookies
// set on the device origin as the worker would mirror them, the ones it
// deleted deleted. What the agent does to the device's answer on the
// worker's path (a type sniffed for an untyped body, its absolute URLs on
// the head's ClientOrigin, legacy TLS) it did on this one already: both
// run agent/tunnel.ServeHTTP over the same device proxy.
func writeDeviceHead(w http.ResponseWriter, resp *proto.FetchResponse, log *slog.Logger) {
	h := w.Header()
	for k, vs := range resp.Header {
		if responseDrop[k] || strings.HasPrefix(k, "Access-Control-") {
			continue
		}
		if k == "Content-Security-Policy" {
			for _, v := range vs {
				if v == proto.DeviceCSP {
					continue
				}
				if kept := withoutCSPDirectives(v, "frame-ancestors", "report-uri", "report-to"); kept != "" {
					h.Add(k, kept)
				}
			}
			continue
		}
		h[k] = vs
	}
	h.Add("Content-Security-Policy", proto.DeviceCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Origin-Agent-Cluster", "?1")
	for _, pair := range resp.Cookies {
		name, value, ok := strings.Cut(pair, "=")
		if !ok || proto.IsPortholeCookie(strings.TrimSpace(name)) {
			log.Debug("device cookie not mirrored", "name", truncate(name, 40))
			continue
		}
		c := &http.Cookie{Name: strings.TrimSpace(name), Value: value, Path: "/", Secure: true, SameSite: http.SameSiteStrictMode}
		if v := c.String(); v != "" {
			h.Add("Set-Cookie", v)
		}
	}
	// Cookies the device deleted (agent/deviceproxy reports them), deleted
	// in the browser's store too, as the worker does with cookieStore.
	for _, name := range resp.DeletedCookies {
		if proto.IsPortholeCookie(name) {
			continue
		}
		c := &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, SameSite: http.SameSiteStrictMode}
		if v := c.String(); v != "" {
			h.Add("Set-Cookie", v)
		}
	}
	status := resp.Status
	if status < 200 || status > 599 {
		status = http.StatusBadGateway
	}
	w.WriteHeader(status)
}

// withoutCSPDirectives removes directives from a CSP header value.
func withoutCSPDirectives(policy string, names ...string) string {
	var policies []string
	for p := range strings.SplitSeq(policy, ",") {
		var kept []string
		for d := range strings.SplitSeq(p, ";") {
			d = strings.TrimSpace(d)
			name, _, _ := strings.Cut(d, " ")
			drop := d == ""
			for _, n := range names {
				drop = drop || strings.EqualFold(name, n)
			}
			if !drop {
				kept = append(kept, d)
			}
		}
		if len(kept) > 0 {
			policies = append(policies, strings.Join(kept, "; "))
		}
	}
	return strings.Join(policies, ", ")
}

// offsite reports whether a redirect leaves the device origin r came to.
// The agent already turned redirects to the device's own address into
// paths.
func offsite(loc string, r *http.Request) bool {
	u, err := url.Parse(loc)
	if err != nil {
		return true
	}
	if u.Host == "" && u.Scheme == "" {
		return false
	}
	return !strings.EqualFold(u.Host, r.Host)
}

// fallbackErrorPage answers an exchange that failed before its head.
func (s *Server) fallbackErrorPage(w http.ResponseWriter, err error) {
	code := proto.CodeOf(err)
	var pe *proto.Error
	msg := err.Error()
	if errors.As(err, &pe) {
		msg = pe.Message
	}
	switch code {
	case proto.CodeSessionEnded, proto.CodeSessionNotFound, proto.CodeNotFound:
		s.devicePage(w, http.StatusNotFound, "No such session", "It may have ended or expired. Open the device again from Porthole.")
	case proto.CodeUnauthorized:
		s.sessionWindowPage(w, http.StatusUnauthorized)
	case proto.CodeRateLimited, proto.CodeAgentOffline, proto.CodeAuditBacklog:
		w.Header().Set("Retry-After", "1")
		s.devicePage(w, http.StatusServiceUnavailable, "Try again", msg)
	case proto.CodeUnsupported:
		s.devicePage(w, http.StatusBadGateway, "The agent must be updated", msg)
	default:
		s.devicePage(w, httpStatus(err), "The device could not be reached", msg+" ("+string(code)+")")
	}
}

// noDeviceCookie answers a request without the device cookie: the device
// origin's own page for what the worker did not carry (DeviceWeb), which
// says where the device page belongs.
func (s *Server) noDeviceCookie(w http.ResponseWriter, r *http.Request) {
	if s.cfg.DeviceWeb != nil {
		s.cfg.DeviceWeb.ServeHTTP(w, r)
		return
	}
	s.sessionWindowPage(w, http.StatusNotFound)
}

// sessionWindowPage is the answer to a request whose device cookie is not
// the session's: the device origin belongs to a session window.
func (s *Server) sessionWindowPage(w http.ResponseWriter, status int) {
	app := s.cfg.AppOrigin
	if app == "" {
		app = "/"
	}
	s.devicePageLink(w, status, "Open this device from Porthole",
		"This device page belongs to a Porthole session window. Open it from Porthole: the session window shows it to you, and only to you.", app+"/", "Go to Porthole")
}

func (s *Server) devicePage(w http.ResponseWriter, status int, title, text string) {
	s.devicePageLink(w, status, title, text, "", "")
}

// devicePageLink writes a small page of our own on the device origin.
func (s *Server) devicePageLink(w http.ResponseWriter, status int, title, text, link, linkText string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	body := "<!doctype html><meta charset=utf-8><title>Porthole: " + html.EscapeString(title) + "</title>" +
		"<body style=\"font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem\">" +
		"<h1 style=\"font-size:1.3rem\">" + html.EscapeString(title) + "</h1><p>" + html.EscapeString(text) + "</p>"
	if link != "" {
		body += "<p><a href=\"" + html.EscapeString(link) + "\">" + html.EscapeString(linkText) + "</a></p>"
	}
	_, _ = io.WriteString(w, body+"\n")
}

func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	if n >= 1<<10 {
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64) + " MiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
