package demodevice

import (
	"html/template"
	"net/http"
)

// Pages that misbehave on purpose, for the browser tests of the session
// origin's isolation (SECURITY 12-16). They are plain pages of the device:
// whatever they try runs with exactly the rights a real device's page has.
//
//	GET /evil?api=URL&other=ORIGIN  tries every route out of its session (static/evil.js): the app's
//	                                API at URL and another session's origin, forms and popups
//	                                carrying what it read, a cookie for the parent domain, the top
//	                                window and its storage, document.domain, the relay frame
//	                                (parent.frames) and the worker in their own words, a worker of
//	                                its own (static/evil-sw.js, static/forge.js), the session window's
//	                                BroadcastChannel, origin and socket, Porthole's /__t/ paths; it
//	                                records each outcome, what it could read, and every CSP
//	                                violation in window.__evil and #results
//	GET /websocket                  opens a WebSocket back to its own origin, as devices with live
//	                                status pages do, and records what happened in #ws

var hostilePages = template.Must(template.New("hostile").Parse(`
{{define "evil"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Totally normal status page</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/evil.js" defer></script></head>
<body><main><h1>Totally normal status page</h1>
<p id="targets" data-api="{{.API}}" data-other="{{.Other}}">Trying to escape the session…</p>
<iframe name="sink" title="sink" hidden></iframe>
<p><button type="button" id="popups" onclick="window.__evilPopups()">Check for updates</button></p>
<pre id="results"></pre></main></body></html>
{{end}}
{{define "websocket"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Live status</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/ws.js" defer></script></head>
<body><main><h1>Live status</h1><p id="ws">connecting…</p></main></body></html>
{{end}}`))

func (d *Device) handleEvil(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The device asks the browser to let every origin read it and to keep
	// it off frames: the agent and the browser side must drop both.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Allow-Credentials", "true")
	w.Header().Set("X-Frame-Options", "DENY")
	_ = hostilePages.ExecuteTemplate(w, "evil", struct{ API, Other string }{r.URL.Query().Get("api"), r.URL.Query().Get("other")})
}

func (d *Device) handleWebSocketPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = hostilePages.ExecuteTemplate(w, "websocket", nil)
}
