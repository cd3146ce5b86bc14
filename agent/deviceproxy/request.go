package deviceproxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// exchangeKey carries the inbound ResponseWriter to the response path, for
// CookieMirror.
type exchangeKey struct{}

// ServeHTTP is the request path of one tunnelled request, top to bottom.
func (h *portHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The device address never comes from the request: origin form only.
	if r.URL == nil || r.URL.IsAbs() || r.URL.Host != "" || !strings.HasPrefix(r.URL.Path, "/") ||
		r.Method == http.MethodConnect {
		http.Error(w, "porthole: request target must be an absolute path", http.StatusBadRequest)
		return
	}
	// Credentials from the session shell: kept for the session, never
	// forwarded as they are.
	if vs := r.Header.Values(CredentialsHeader); len(vs) > 0 {
		r.Header.Del(CredentialsHeader)
		if len(vs) != 1 || !h.auth.setCredentials(vs[0]) {
			http.Error(w, "porthole: malformed credentials", http.StatusBadRequest)
			return
		}
		h.log.Info("deviceproxy: credentials set for the session", "device", h.p.d.ID, "port", h.port)
	}
	// A body of unknown length is spooled (within the limit) so that the
	// device gets a Content-Length; see spool.go.
	if r.ContentLength < 0 && h.p.d.UploadSpoolLimit > 0 {
		cleanup, status, err := h.p.spool(r)
		defer cleanup()
		if err != nil {
			level := slogLevelFor(status)
			h.log.Log(r.Context(), level, "deviceproxy: request body refused", "device", h.p.d.ID,
				"target", r.URL.RequestURI(), "status", status, "err", err)
			http.Error(w, "porthole: "+err.Error(), status)
			return
		}
	}
	ctx := context.WithValue(r.Context(), exchangeKey{}, w)
	h.rp.ServeHTTP(w, r.WithContext(ctx))
}

// rewrite builds the request the device gets.
func (h *portHandler) rewrite(pr *httputil.ProxyRequest) {
	out := pr.Out
	up := h.up.Load()
	out.URL.Scheme = up.target.Scheme
	out.URL.Host = up.target.Host
	out.URL.User = nil
	out.Host = up.host
	// Explicitly nil: ReverseProxy adds no X-Forwarded-For then.
	out.Header["X-Forwarded-For"] = nil
	rewriteOrigin(out.Header, up.origin, ClientOrigin(pr.In.Context()), out.Method)

	// The jar's cookies and the page's own, merged (cookies.go).
	page := strings.Join(pr.In.Header.Values("Cookie"), "; ")
	if c := h.s.jar.header(out.URL.Path, page, time.Now()); c != "" {
		out.Header.Set("Cookie", c)
	} else {
		out.Header.Del("Cookie")
	}

	// Offer only what the response path can decode. A range of an encoded
	// representation cannot be decoded on its own: ask for identity then.
	if out.Header.Get("Range") != "" {
		out.Header.Set("Accept-Encoding", "identity")
	} else {
		out.Header.Set("Accept-Encoding", "gzip, deflate")
	}
}

// clientOriginKey carries ClientOrigin in a request's context.
type clientOriginKey struct{}

// WithClientOrigin returns ctx carrying the origin the technician's
// client serves the device's pages on (proto.RequestHead.ClientOrigin):
// the session's device origin in the browser, the local listener's origin
// for `porthole http`. Origin and Referer on it become the device's, and the
// response path rewrites the device's absolute URLs to it.
func WithClientOrigin(ctx context.Context, origin string) context.Context {
	return context.WithValue(ctx, clientOriginKey{}, origin)
}

// ClientOrigin returns what WithClientOrigin put in ctx, or "".
func ClientOrigin(ctx context.Context) string {
	o, _ := ctx.Value(clientOriginKey{}).(string)
	return o
}

// rewriteOrigin makes Origin and Referer look as if the page came from the
// device itself, but only when they are the client's own (client): the
// device's pages, served on the client's origin, are the device's own. A
// foreign Origin (another site, "null") and a foreign Referer reach the
// device as they are, so its own CSRF check sees a foreign page for what it
// is: nothing is laundered into the device's origin. A request with no
// Origin comes from a client that is no web page (browsers send one with
// every state-changing request); a state-changing one gets the device's
// origin, as a browser on the device's own origin would send, and a
// Referer to go with it.
func rewriteOrigin(h http.Header, device, client, method string) {
	own := true
	if origins := h.Values("Origin"); len(origins) > 0 {
		own = client != "" && len(origins) == 1 && origins[0] == client
		if own {
			h.Set("Origin", device)
		}
	}
	if refs := h.Values("Referer"); len(refs) > 0 {
		u, err := url.Parse(refs[0])
		switch {
		case err != nil || u.Scheme == "" || u.Host == "" || len(refs) > 1:
			h.Del("Referer") // no browser sends that
		case client != "" && u.Scheme+"://"+u.Host == client:
			ref := device + u.EscapedPath()
			if ref == device {
				ref += "/"
			}
			if u.RawQuery != "" {
				ref += "?" + u.RawQuery
			}
			h.Set("Referer", ref)
		}
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return
	}
	if len(h.Values("Origin")) == 0 {
		h.Set("Origin", device)
	}
	if own && len(h.Values("Referer")) == 0 {
		h.Set("Referer", device+"/")
	}
}

// authTransport answers the device's Basic and Digest challenges with the
// session's credentials (auth.go). A request the page sent with its own
// Authorization is left alone.
type authTransport struct {
	auth *authState
	base http.RoundTripper
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" {
		return t.base.RoundTrip(req)
	}
	uri := req.URL.RequestURI()
	sent := t.auth.authorize(req.Method, uri)
	if sent != "" {
		req.Header.Set("Authorization", sent)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if !t.auth.observe(resp.Header, sent) || !replayable(req) {
		return resp, nil
	}
	// A fresh Digest nonce, or credentials that came with this very
	// request: once more with the right answer.
	again := req.Clone(req.Context())
	if req.GetBody != nil {
		if again.Body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	a := t.auth.authorize(req.Method, uri)
	if a == "" {
		return resp, nil
	}
	again.Header.Set("Authorization", a)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return t.base.RoundTrip(again)
}

func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func slogLevelFor(status int) slog.Level {
	if status == StatusClientClosedRequest {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
