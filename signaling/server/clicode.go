package server

import (
	"html/template"
	"net/http"
	"strings"

	"github.com/porthole-dev/porthole/proto"
)

// The CLI's out-of-band sign-in (`porthole login --no-browser`): the
// technician runs the command on one machine (a jump host, a container)
// and approves in a browser on another, where a loopback redirect cannot
// reach the command. The authorization request then names this page as
// its redirect URI (exactly, client porthole-cli); after consent the
// browser lands here with code and state, and the page shows them as one
// line to paste into the command. The code alone is useless: the command
// holds the PKCE verifier, checks the state, and the code is single-use
// and expires within a minute, as for the loopback redirect.

// cliCodePage reports whether redirect is the out-of-band page.
func (s *Server) cliCodePage(redirect string) bool {
	return s.cfg.AppOrigin != "" && redirect == s.cfg.AppOrigin+proto.PathCLICode
}

var cliCodeTmpl = template.Must(template.New("code").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{{.Title}} — Porthole</title><link rel="stylesheet" href="/app.css"></head>
<body><header class="top"><span class="brand">Porthole</span></header><main class="page"><section class="signin">
<h1>{{.Title}}</h1><p>{{.Text}}</p>
{{if .Code}}<p><label for="code">Code for the porthole command</label></p><pre id="code" class="cli-code">{{.Code}}</pre>
<p>It works once, for one minute, and only for the command that asked.</p>{{end}}
</section></main></body></html>`))

// pasteable reports whether s is a non-empty base64url string, what our
// codes and the CLI's states are: the page shows nothing else, so a link
// cannot make it display text of someone else's choosing.
func pasteable(s string) bool {
	return s != "" && strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == ""
}

// cliCode answers GET PathCLICode.
func (s *Server) cliCode(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	data := map[string]string{}
	state, code := q.Get("state"), q.Get("code")
	status := http.StatusOK
	switch {
	case q.Get("error") == proto.OAuthAccessDenied:
		data["Title"], data["Text"] = "Not signed in", "You denied the porthole command. It stays signed out; you can close this tab."
	case q.Get("error") != "":
		data["Title"], data["Text"] = "Not signed in", "The sign-in failed ("+q.Get("error")+"). Run porthole login again."
	case !pasteable(state) || !pasteable(code) || len(code)+len(state) > 512:
		status = http.StatusBadRequest
		data["Title"], data["Text"] = "No code here", "This page shows the code of a porthole login after you allow it. Run porthole login --no-browser to get one."
	default:
		data["Title"], data["Text"] = "Paste this into the porthole command", "Copy the line below and paste it where porthole login is waiting."
		data["Code"] = state + "." + code
	}
	w.WriteHeader(status)
	_ = cliCodeTmpl.Execute(w, data)
}
