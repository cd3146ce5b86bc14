package demodevice

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
)

// Frame-busting pages, one per variant of the anti-clickjacking idiom that
// embedded web servers ship (OWASP's Clickjacking Defense Cheat Sheet and
// the legacy code it replaced). Each hides itself or leaves any frame it is
// shown in, so in the session window's sandboxed frame it stays blank or
// throws; in a tab of its own (self === top) it must render and work: a
// form (POST, checked against Origin with StrictOrigin) and a link to the
// next variant.
//
//	GET  /bust/{variant}        the page; ?saved=TEXT shows what was saved
//	POST /bust/{variant}/save   form field note → 303 to the page with ?saved=
//
// Variants (BustVariants): the script is inline in <head> unless noted.
var bustPages = map[string]struct{ head, tail template.HTML }{
	// The cheat sheet's code: body hidden by a style element that only a
	// top-level page removes; a framed one navigates the top instead.
	"owasp": {head: `<style id="antiClickjack">body{display:none !important;}</style>
<script type="text/javascript">
if (self === top) {
  var antiClickjack = document.getElementById("antiClickjack");
  antiClickjack.parentNode.removeChild(antiClickjack);
} else {
  top.location = self.location;
}
</script>`},
	// Its predecessor: the whole document hidden, shown by script.
	"html-hidden": {head: `<style>html{display:none;}</style>
<script>
if (self == top) {
  document.documentElement.style.display = 'block';
} else {
  top.location = self.location;
}
</script>`},
	// top != self, checked at the end of the body; hidden until then.
	"top-ne-self": {head: `<style>body{visibility:hidden}</style>`, tail: `<script>
if (top != self) {
  top.location.href = self.location.href;
} else {
  document.body.style.visibility = 'visible';
}
</script>`},
	// window.top !== window.self, with replace(): the page itself stays
	// visible, the navigation throws.
	"window-top": {head: `<script>
if (window.top !== window.self) {
  window.top.location.replace(window.self.location.href);
}
</script>`},
	// The legacy frames count, revealed on load.
	"parent-frames": {head: `<style>body{display:none}</style>
<script>
if (parent.frames.length > 0) {
  top.location.replace(document.location);
}
window.addEventListener('load', function () {
  if (parent.frames.length === 0) document.body.style.display = 'block';
});
</script>`},
	// A cautious page: it catches the refusal and says it cannot be
	// framed, in place of its content.
	"caught": {tail: `<script>
if (self !== top) {
  try { top.location = self.location; } catch (e) {
    document.body.innerHTML = '<p id="refusal">This page cannot be displayed in a frame.</p>';
  }
}
</script>`},
}

// BustVariants are the frame-busting pages' names, in the order their
// "next" links follow.
var BustVariants = []string{"owasp", "html-hidden", "top-ne-self", "window-top", "parent-frames", "caught"}

var bustTmpl = template.Must(template.New("bust").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Frame busting: {{.Name}}</title>
{{.Head}}
</head><body>
<h1 id="title">Frame-busting page: {{.Name}}</h1>
<p>Where am I? <b id="alone">unknown</b></p>
<form method="post" action="/bust/{{.Name}}/save"><label>Note <input name="note" id="note"></label> <button type="submit" id="save">Save</button></form>
{{if .Saved}}<p>Saved: <b id="saved">{{.Saved}}</b></p>{{end}}
<p><a id="next" href="/bust/{{.Next}}">Next variant: {{.Next}}</a></p>
<script>document.getElementById('alone').textContent = self === top ? 'alone in its tab' : 'in a frame';</script>
{{.Tail}}
</body></html>
`))

func (d *Device) handleBust(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("variant")
	p, ok := bustPages[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	next := BustVariants[(slices.Index(BustVariants, name)+1)%len(BustVariants)]
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// What such devices send besides: the frame is refused twice over.
	w.Header().Set("X-Frame-Options", "SAMEORIGIN")
	w.Header().Set("Content-Security-Policy", "frame-ancestors 'self'")
	_ = bustTmpl.Execute(w, struct {
		Name, Next, Saved string
		Head, Tail        template.HTML
	}{name, next, r.URL.Query().Get("saved"), p.head, p.tail})
}

func (d *Device) handleBustSave(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("variant")
	if _, ok := bustPages[name]; !ok {
		http.NotFound(w, r)
		return
	}
	if !d.originAllowed(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, "/bust/"+name+"?saved="+url.QueryEscape(r.PostForm.Get("note")), http.StatusSeeOther)
}
