package demodevice

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

//go:embed assets/templates/*.html
var templatesFS embed.FS

//go:embed assets/static
var assetsFS embed.FS

var staticFS = mustSub(assetsFS, "assets/static")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the directory is embedded above; this cannot fail
	}
	return sub
}

// parsePages parses one template set per page, each with the shared layout.
func parsePages() map[string]*template.Template {
	m := make(map[string]*template.Template)
	for _, name := range []string{"status", "supplies", "settings", "login", "admin", "eventlog", "service", "xfo"} {
		m[name] = template.Must(template.ParseFS(templatesFS, "assets/templates/layout.html", "assets/templates/"+name+".html"))
	}
	return m
}

// FirmwareVersion is the version the device reports.
const FirmwareVersion = "4.0.1 (20260114)"

const sessionCookie = "sid"

// Supply is one consumable.
type Supply struct {
	Name       string `json:"name"`
	Color      string `json:"color"`
	PartNumber string `json:"partNumber"`
	Level      int    `json:"level"` // percent remaining
}

var supplies = []Supply{
	{"Black Cartridge", "black", "PH-400X-K", 62},
	{"Cyan Cartridge", "cyan", "PH-400X-C", 41},
	{"Magenta Cartridge", "magenta", "PH-400X-M", 17},
	{"Yellow Cartridge", "yellow", "PH-400X-Y", 78},
	{"Imaging Drum", "none", "PH-400D", 88},
	{"Fuser Kit", "none", "PH-400F", 54},
}

type tray struct{ Name, Size, Type, Capacity, State string }

var trays = []tray{
	{"Tray 1 (manual)", "Any", "Any", "100", "Empty"},
	{"Tray 2", "A4", "Plain", "250", "OK (60%)"},
	{"Tray 3", "Letter", "Plain", "550", "OK (90%)"},
}

type counter struct {
	Name  string
	Value string
}

const totalPages = 48213

var counters = []counter{
	{"Total impressions", "48,213"},
	{"Monochrome", "31,877"},
	{"Color", "16,336"},
	{"Two-sided sheets", "9,214"},
	{"Copies", "5,120"},
	{"Scans", "2,304"},
	{"Paper jams", "12"},
}

var paperSizes = []string{"A4", "A5", "Letter", "Legal", "Executive"}

type event struct {
	N          int
	Time, Code string
	Text       string
}

// events is a long, compressible log for /gzip.
var events = func() []event {
	msgs := []struct{ code, text string }{
		{"10.32.00", "Unauthorized supply installed"},
		{"13.A2.D2", "Paper jam in tray 2 pickup area"},
		{"41.03.A0", "Unexpected paper size in tray 2"},
		{"59.F0.00", "Transfer motor error, recovered"},
		{"10.00.15", "Cartridge low: Magenta"},
		{"00.00.01", "Power on"},
		{"00.00.02", "Sleep mode entered"},
	}
	base := time.Date(2026, 1, 14, 8, 0, 0, 0, time.UTC)
	out := make([]event, 200)
	for i := range out {
		m := msgs[(i*5+i/7)%len(msgs)]
		out[i] = event{N: 200 - i, Time: base.Add(-time.Duration(i) * 97 * time.Minute).Format("2006-01-02 15:04"), Code: m.code, Text: m.text}
	}
	return out
}()

type pageData struct {
	Title, Active string
	Model, Serial string
	MAC, Hostname string
	Firmware      string
	User          string
	Scripts       []string
	Flash, Error  string
	Path          string
	Settings      Settings
	Supplies      []Supply
	Trays         []tray
	Counters      []counter
	PaperSizes    []string
	Events        []event
}

func (d *Device) page(r *http.Request, title, active string) pageData {
	s := d.Settings()
	return pageData{
		Title:    title,
		Active:   active,
		Model:    d.cfg.Model,
		Serial:   d.cfg.Serial,
		MAC:      d.cfg.MAC,
		Hostname: s.Hostname,
		Firmware: FirmwareVersion,
		User:     d.sessionUser(r),
		Settings: s,
	}
}

func (d *Device) render(w http.ResponseWriter, status int, name string, data pageData) {
	var buf bytes.Buffer
	if err := d.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		http.Error(w, "template: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (d *Device) handleStatus(w http.ResponseWriter, r *http.Request) {
	p := d.page(r, "Device Status", "status")
	p.Scripts = []string{"/static/status.js"}
	p.Supplies = supplies
	p.Counters = counters
	d.render(w, http.StatusOK, "status", p)
}

func (d *Device) handleSupplies(w http.ResponseWriter, r *http.Request) {
	p := d.page(r, "Supplies", "supplies")
	p.Supplies = supplies
	p.Trays = trays
	d.render(w, http.StatusOK, "supplies", p)
}

func (d *Device) handleSettingsForm(w http.ResponseWriter, r *http.Request) {
	p := d.page(r, "General Settings", "settings")
	p.PaperSizes = paperSizes
	if r.URL.Query().Get("saved") == "1" {
		p.Flash = "Settings saved."
	}
	d.render(w, http.StatusOK, "settings", p)
}

func (d *Device) handleSettingsSave(w http.ResponseWriter, r *http.Request) {
	if !d.originAllowed(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		err = r.ParseMultipartForm(1 << 20)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	s, err := parseSettings(r.PostForm)
	if err != nil {
		p := d.page(r, "General Settings", "settings")
		p.PaperSizes = paperSizes
		p.Error = err.Error()
		d.render(w, http.StatusBadRequest, "settings", p)
		return
	}
	d.mu.Lock()
	d.settings = s
	d.mu.Unlock()
	http.Redirect(w, r, "/settings?saved=1", http.StatusSeeOther)
}

func parseSettings(f url.Values) (Settings, error) {
	s := Settings{
		Hostname:  strings.TrimSpace(f.Get("hostname")),
		Location:  strings.TrimSpace(f.Get("location")),
		Contact:   strings.TrimSpace(f.Get("contact")),
		PaperSize: f.Get("paperSize"),
		Duplex:    f.Get("duplex") != "",
	}
	switch {
	case s.Hostname == "" || len(s.Hostname) > 63:
		return s, fmt.Errorf("host name must be 1 to 63 characters")
	case len(s.Location) > 128 || len(s.Contact) > 128:
		return s, fmt.Errorf("location and contact must be at most 128 characters")
	}
	if s.PaperSize == "" {
		s.PaperSize = "A4"
	}
	known := false
	for _, p := range paperSizes {
		known = known || p == s.PaperSize
	}
	if !known {
		return s, fmt.Errorf("unknown paper size %q", s.PaperSize)
	}
	s.SleepMinutes = 15
	if v := f.Get("sleepMinutes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 240 {
			return s, fmt.Errorf("sleep time must be a number of minutes from 1 to 240")
		}
		s.SleepMinutes = n
	}
	return s, nil
}

// originAllowed enforces Config.StrictOrigin; it writes a 403 and returns false on a mismatch.
func (d *Device) originAllowed(w http.ResponseWriter, r *http.Request) bool {
	if !d.cfg.StrictOrigin {
		return true
	}
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return true
	}
	u, err := url.Parse(src)
	if err == nil && u.Host == r.Host {
		return true
	}
	d.log.Info("demo device: cross-origin form refused", "origin", src, "host", r.Host)
	http.Error(w, "cross-origin request refused", http.StatusForbidden)
	return false
}

func (d *Device) sessionUser(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sessions[c.Value]
}

func (d *Device) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	d.render(w, http.StatusOK, "login", d.page(r, "Sign In", "admin"))
}

func (d *Device) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !d.originAllowed(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	user, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
	if !equal(user, d.cfg.AdminUser) || !equal(pass, d.cfg.AdminPass) {
		d.log.Info("demo device: login refused", "user", user)
		p := d.page(r, "Sign In", "admin")
		p.Error = "Invalid user name or password."
		d.render(w, http.StatusOK, "login", p)
		return
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	d.mu.Lock()
	if len(d.sessions) >= 10000 {
		clear(d.sessions) // a demo device: forget everyone rather than grow without bound
	}
	d.sessions[id] = user
	d.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: "ui_lang", Value: "en", Path: "/", SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/admin", http.StatusFound)
}

func (d *Device) handleAdmin(w http.ResponseWriter, r *http.Request) {
	p := d.page(r, "Administration", "admin")
	if p.User == "" {
		http.Redirect(w, r, "/login", http.StatusFound)
		return
	}
	p.Scripts = []string{"/static/admin.js"}
	d.render(w, http.StatusOK, "admin", p)
}

func (d *Device) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		d.mu.Lock()
		delete(d.sessions, c.Value)
		d.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	http.Redirect(w, r, "/login", http.StatusFound)
}

func (d *Device) handleBasic(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || !equal(user, d.cfg.BasicUser) || !equal(pass, d.cfg.BasicPass) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Porthole Service Menu", charset="UTF-8"`)
		http.Error(w, "401 Unauthorized: service credentials required", http.StatusUnauthorized)
		return
	}
	p := d.page(r, "Service Menu", "service")
	p.User = user
	p.Path = r.URL.Path
	d.render(w, http.StatusOK, "service", p)
}

func (d *Device) handleGzip(w http.ResponseWriter, r *http.Request) {
	p := d.page(r, "Event Log", "log")
	p.Events = events
	var page bytes.Buffer
	if err := d.pages["eventlog"].ExecuteTemplate(&page, "layout", p); err != nil {
		http.Error(w, "template: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Accept-Encoding")
	body := page.Bytes()
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, _ = zw.Write(body)
		_ = zw.Close()
		body = z.Bytes()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip (q>0).
func acceptsGzip(v string) bool {
	for part := range strings.SplitSeq(v, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "x-gzip" && name != "*" {
			continue
		}
		q := 1.0
		if k, val, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
				q = f
			}
		}
		return q > 0
	}
	return false
}

func (d *Device) handleXFO(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
	p := d.page(r, "Security Notice", "xfo")
	p.Scripts = []string{"/static/framebust.js"}
	d.render(w, http.StatusOK, "xfo", p)
}

func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
