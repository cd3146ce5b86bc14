package demodevice

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"net/http"
)

// The quirks of older embedded web UIs, for the signaling fallback (a
// browser sends these requests to the server, never to the session's
// service worker):
//
//	GET  /legacy             a status page whose start-up makes synchronous XMLHttpRequests
//	                         (legacy.js), as jQuery's async:false does in many EWS UIs:
//	                         GET /api/legacy/info (JSON), POST /api/legacy/echo (text),
//	                         GET /api/legacy/blob (binary), POST /api/legacy/blob (binary);
//	                         it renders nothing useful unless every one of them works, and
//	                         records each outcome in #legacy and window.__legacy
//	GET  /api/legacy/info    JSON with the model and serial
//	POST /api/legacy/echo    the text body back, upper-cased, with its length
//	GET  /api/legacy/blob    256 bytes 0x00…0xff (application/octet-stream)
//	POST /api/legacy/blob    any binary body (at most 1 MiB); text "<length> <sha256 hex>"
//	GET  /favicon.ico        the device's icon (counted in Stats.Favicons): browsers fetch it
//	                         on their own, outside any service worker

var legacyPage = template.Must(template.New("legacy").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.}} — Legacy status</title>
<link rel="icon" href="/favicon.ico">
<link rel="stylesheet" href="/static/style.css">
<script src="/static/legacy.js"></script></head>
<body><main><h1>Legacy status</h1>
<p id="legacy" data-state="loading">Loading…</p>
<table id="legacy-results"></table></main></body></html>
`))

func (d *Device) handleLegacy(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = legacyPage.Execute(w, d.cfg.Model)
}

func (d *Device) handleLegacyInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"model": d.cfg.Model, "serial": d.cfg.Serial})
}

func (d *Device) handleLegacyEcho(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%d:%s", len(b), upper(string(b)))
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func (d *Device) handleLegacyBlob(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		h := sha256.New()
		n, over, err := drainLimited(h, r.Body, 1<<20)
		if err != nil || over {
			http.Error(w, "body too large or broken", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
		return
	}
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(b)
}

// favicon is a 1×1 ICO (a 32-bit BMP inside), enough for a browser to
// accept it.
var favicon = func() []byte {
	ico := []byte{0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 32, 0}
	bmp := []byte{40, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 32, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x20, 0x40, 0xd0, 0xff, // one blue-ish pixel, BGRA
		0, 0, 0, 0} // AND mask row
	size := len(bmp)
	ico = append(ico, byte(size), byte(size>>8), 0, 0, 22, 0, 0, 0)
	return append(ico, bmp...)
}()

func (d *Device) handleFavicon(w http.ResponseWriter, r *http.Request) {
	d.stats.Favicons.Add(1)
	w.Header().Set("Content-Type", "image/x-icon")
	_, _ = w.Write(favicon)
}
