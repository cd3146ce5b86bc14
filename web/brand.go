package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // image.DecodeConfig of JPEG logos
	_ "image/png"  // and of PNG logos
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Branding: an operator gives the app a product name, a logo and two
// colours without rebuilding, with a small JSON file that signaling reads
// at start (porthole-signaling --brand FILE):
//
//	{"name": "Acme Remote", "logo": "acme.svg",
//	 "colors": {"primary": "#0b5cad", "header": "#102a43"}}
//
// Every field is optional. The logo path is relative to the JSON file.
// LoadBrand refuses, with a sentence saying what to change, anything the
// app could not show well or safely: a colour that is not #rrggbb or that
// white text on it would not read at WCAG AA contrast (4.5:1: both colours
// carry white text, and primary is also the links' colour on white), a
// name that is empty of letters, too long or has control characters, a
// logo that is too large in bytes or pixels, or is not a PNG, JPEG or SVG
// image, or an SVG with scripts, event handlers or foreign objects.
//
// The branding reaches the browser as files, never inline, so the app's
// CSP stays strict: /brand.css (custom properties over the foundation's),
// /brand.json (name and logo address for the page's script) and
// /brand-logo, served with a policy of its own that sandboxes an SVG
// opened directly.

// Limits of the branding.
const (
	MaxBrandFile   = 16 << 10  // the JSON file
	MaxBrandLogo   = 256 << 10 // the logo file
	MaxBrandName   = 40        // characters of the product name
	MaxLogoPixels  = 1024      // width and height of a PNG or JPEG logo
	MinLogoPixels  = 16
	MinBrandAAText = 4.5 // WCAG 2 AA contrast for normal text
)

// DefaultBrandName is the product name without a brand file.
const DefaultBrandName = "Porthole"

// Brand is a validated branding, ready to serve. Its zero value is not
// useful: use DefaultBrand or LoadBrand.
type Brand struct {
	name     string
	primary  string // #rrggbb or ""
	header   string
	logo     []byte
	logoType string // the logo's Content-Type
	css      []byte
	json     []byte
}

// brandFile is the JSON an operator writes.
type brandFile struct {
	Name   string `json:"name"`
	Logo   string `json:"logo"`
	Colors struct {
		Primary string `json:"primary"`
		Header  string `json:"header"`
	} `json:"colors"`
}

// DefaultBrand is Porthole's own branding: its name, no logo, the
// foundation's colours.
func DefaultBrand() *Brand {
	b, _ := newBrand(brandFile{}, nil, "")
	return b
}

// LoadBrand reads and validates the brand file at path (and the logo it
// names, relative to it).
func LoadBrand(path string) (*Brand, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("brand file: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxBrandFile+1))
	if err != nil {
		return nil, fmt.Errorf("brand file %s: %w", path, err)
	}
	if len(raw) > MaxBrandFile {
		return nil, fmt.Errorf("brand file %s: larger than %d KiB; it holds a name, a logo's file name and two colours", path, MaxBrandFile>>10)
	}
	var bf brandFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bf); err != nil {
		return nil, fmt.Errorf("brand file %s: %w (want {\"name\", \"logo\", \"colors\": {\"primary\", \"header\"}})", path, err)
	}
	var logo []byte
	if bf.Logo != "" {
		lp := bf.Logo
		if !filepath.IsAbs(lp) {
			lp = filepath.Join(filepath.Dir(path), lp)
		}
		if logo, err = readLogo(lp); err != nil {
			return nil, fmt.Errorf("brand file %s: %w", path, err)
		}
	}
	b, err := newBrand(bf, logo, bf.Logo)
	if err != nil {
		return nil, fmt.Errorf("brand file %s: %w", path, err)
	}
	return b, nil
}

func readLogo(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("logo: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxBrandLogo+1))
	if err != nil {
		return nil, fmt.Errorf("logo %s: %w", path, err)
	}
	if len(b) > MaxBrandLogo {
		return nil, fmt.Errorf("logo %s: larger than %d KiB; a logo in the header needs far less (an SVG, or a PNG of at most %d pixels a side)", path, MaxBrandLogo>>10, MaxLogoPixels)
	}
	return b, nil
}

func newBrand(bf brandFile, logo []byte, logoName string) (*Brand, error) {
	b := &Brand{name: DefaultBrandName}
	if bf.Name != "" {
		name, err := checkName(bf.Name)
		if err != nil {
			return nil, err
		}
		b.name = name
	}
	var err error
	if b.primary, err = checkColor("colors.primary", bf.Colors.Primary); err != nil {
		return nil, err
	}
	if b.header, err = checkColor("colors.header", bf.Colors.Header); err != nil {
		return nil, err
	}
	if logo != nil {
		if b.logoType, err = checkLogo(logo); err != nil {
			return nil, fmt.Errorf("logo %s: %w", logoName, err)
		}
		b.logo = logo
	}
	b.css = b.buildCSS()
	view := struct {
		Name string `json:"name"`
		Logo string `json:"logo,omitempty"`
	}{Name: b.name}
	if b.logo != nil {
		// The address changes with the logo, so a browser never shows an
		// old one (everything is no-store anyway).
		sum := sha256.Sum256(b.logo)
		view.Logo = "brand-logo?v=" + hex.EncodeToString(sum[:6])
	}
	b.json, _ = json.Marshal(&view)
	return b, nil
}

// Name is the product name the app shows.
func (b *Brand) Name() string { return b.name }

func checkName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", errors.New("name: not UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > MaxBrandName {
		return "", fmt.Errorf("name: %d characters, at most %d fit the header", n, MaxBrandName)
	}
	letters := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", fmt.Errorf("name: control or format character %U", r)
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			letters = true
		}
	}
	if !letters {
		return "", errors.New("name: needs at least one letter or digit")
	}
	return s, nil
}

var hexColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// checkColor accepts "" (the foundation's own) or #rrggbb that white text
// reads on at WCAG AA contrast.
func checkColor(field, c string) (string, error) {
	if c == "" {
		return "", nil
	}
	if !hexColor.MatchString(c) {
		return "", fmt.Errorf("%s: %q is not a colour of the form #rrggbb", field, c)
	}
	c = strings.ToLower(c)
	if r := Contrast(c, "#ffffff"); r < MinBrandAAText {
		return "", fmt.Errorf("%s: white text on %s has contrast %.1f:1; WCAG AA needs %.1f:1, so pick a darker shade", field, c, r, MinBrandAAText)
	}
	return c, nil
}

// checkLogo returns the Content-Type of a PNG, JPEG or SVG logo that the
// header can show, or why not.
func checkLogo(b []byte) (string, error) {
	switch ct := http.DetectContentType(b); ct {
	case "image/png", "image/jpeg":
		cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			return "", fmt.Errorf("not a readable %s: %w", ct, err)
		}
		for _, d := range []int{cfg.Width, cfg.Height} {
			if d < MinLogoPixels || d > MaxLogoPixels {
				return "", fmt.Errorf("%d×%d pixels; each side must be %d to %d", cfg.Width, cfg.Height, MinLogoPixels, MaxLogoPixels)
			}
		}
		return ct, nil
	}
	if err := checkSVG(b); err != nil {
		return "", err
	}
	return "image/svg+xml", nil
}

// checkSVG accepts an XML document whose root is an SVG element, with no
// script, foreignObject or event-handler attribute anywhere. The header
// shows it in an <img>, where scripts never run; this keeps a logo opened
// directly harmless as well (its response is sandboxed too).
func checkSVG(b []byte) error {
	dec := xml.NewDecoder(bytes.NewReader(b))
	root := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if root {
				return errors.New("not a PNG, JPEG or SVG image")
			}
			return nil
		}
		if err != nil {
			if root {
				return errors.New("not a PNG, JPEG or SVG image")
			}
			return fmt.Errorf("SVG that is not well-formed XML: %w", err)
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if root {
			if el.Name.Local != "svg" {
				return errors.New("not a PNG, JPEG or SVG image")
			}
			root = false
		}
		switch strings.ToLower(el.Name.Local) {
		case "script", "foreignobject", "iframe", "embed", "object":
			return fmt.Errorf("SVG with a <%s> element; a logo needs none", el.Name.Local)
		}
		for _, a := range el.Attr {
			n := strings.ToLower(a.Name.Local)
			v := strings.ToLower(strings.TrimSpace(a.Value))
			if strings.HasPrefix(n, "on") {
				return fmt.Errorf("SVG with an event handler (%s); a logo needs none", a.Name.Local)
			}
			if (n == "href") && !strings.HasPrefix(v, "#") {
				return errors.New("SVG that refers to another file; embed everything in the logo")
			}
		}
	}
}

// buildCSS sets the foundation's custom properties to the brand's colours.
// The selector matches Pico's own light-theme rule, and brand.css comes
// after it, so these win.
func (b *Brand) buildCSS() []byte {
	var sb strings.Builder
	sb.WriteString("/* Branding from porthole-signaling --brand (empty: Porthole's own). */\n")
	if b.primary == "" && b.header == "" {
		return []byte(sb.String())
	}
	sb.WriteString(":root:not([data-theme=dark]),[data-theme=light]{")
	if c := b.primary; c != "" {
		hover := mix(c, "#000000", 0.15)
		fmt.Fprintf(&sb, "--pico-primary:%s;--pico-primary-background:%s;--pico-primary-border:%s;", c, c, c)
		fmt.Fprintf(&sb, "--pico-primary-underline:%s;--pico-primary-hover:%s;", rgba(c, 0.5), hover)
		fmt.Fprintf(&sb, "--pico-primary-hover-background:%s;--pico-primary-hover-border:%s;", hover, hover)
		fmt.Fprintf(&sb, "--pico-primary-focus:%s;--pico-primary-inverse:#fff;", rgba(c, 0.4))
		fmt.Fprintf(&sb, "--ph-primary:%s;", c)
	}
	if c := b.header; c != "" {
		fmt.Fprintf(&sb, "--ph-header:%s;", c)
	}
	sb.WriteString("}\n")
	return []byte(sb.String())
}

// serve answers the brand's own paths (p is the path without any shell
// prefix) and reports whether it did.
func (b *Brand) serve(w http.ResponseWriter, r *http.Request, p string) bool {
	var body []byte
	h := w.Header()
	switch p {
	case "/brand.css":
		h.Set("Content-Type", contentTypes[".css"])
		body = b.css
	case "/brand.json":
		h.Set("Content-Type", "application/json")
		body = b.json
	case "/brand-logo":
		if b.logo == nil {
			http.NotFound(w, r)
			return true
		}
		h.Set("Content-Type", b.logoType)
		// Opened directly, an SVG is a document: it gets no script, no
		// fetches, and a unique origin.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
		h.Set("Content-Disposition", "inline")
		body = b.logo
	default:
		return false
	}
	strictHeaders(h)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
	return true
}

// Contrast is the WCAG 2 contrast ratio of two #rrggbb colours (1 to 21).
func Contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

func channels(c string) [3]float64 {
	var out [3]float64
	for i := range 3 {
		var v uint8
		fmt.Sscanf(c[1+2*i:3+2*i], "%02x", &v)
		out[i] = float64(v)
	}
	return out
}

// luminance is WCAG 2's relative luminance of #rrggbb.
func luminance(c string) float64 {
	ch := channels(c)
	var l [3]float64
	for i, v := range ch {
		s := v / 255
		if s <= 0.04045 {
			l[i] = s / 12.92
		} else {
			l[i] = math.Pow((s+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
}

// mix blends a towards b by f (0..1).
func mix(a, b string, f float64) string {
	ca, cb := channels(a), channels(b)
	var out [3]int
	for i := range 3 {
		out[i] = int(math.Round(ca[i]*(1-f) + cb[i]*f))
	}
	return fmt.Sprintf("#%02x%02x%02x", out[0], out[1], out[2])
}

func rgba(c string, alpha float64) string {
	ch := channels(c)
	return fmt.Sprintf("rgba(%d,%d,%d,%.2f)", int(ch[0]), int(ch[1]), int(ch[2]), alpha)
}
