package web

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pngOf is a w×h PNG.
func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	img.Set(0, 0, color.RGBA{R: 200, A: 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeBrand writes brand.json (and the files) into a new directory and
// loads it.
func writeBrand(t *testing.T, brand string, files map[string][]byte) (*Brand, error) {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "brand.json")
	if err := os.WriteFile(p, []byte(brand), 0o644); err != nil {
		t.Fatal(err)
	}
	return LoadBrand(p)
}

func TestLoadBrandRefusesWhatTheAppCannotShowWellOrSafely(t *testing.T) {
	svg := []byte(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10" fill="#123"/></svg>`)
	for _, c := range []struct {
		name, json string
		files      map[string][]byte
		want       string // "" = accepted; else a part of the error
	}{
		{"everything", `{"name":"Acme Remote","logo":"l.svg","colors":{"primary":"#0B5CAD","header":"#102a43"}}`, map[string][]byte{"l.svg": svg}, ""},
		{"png logo", `{"logo":"l.png"}`, map[string][]byte{"l.png": pngOf(t, 64, 32)}, ""},
		{"empty", `{}`, nil, ""},
		{"unknown field", `{"name":"x","colour":"#000000"}`, nil, `unknown field "colour"`},
		{"not json", `name: x`, nil, "want {"},
		{"short colour", `{"colors":{"primary":"#fff"}}`, nil, "not a colour of the form #rrggbb"},
		{"css injection", `{"colors":{"primary":"red;}body{display:none"}}`, nil, "not a colour"},
		{"low contrast primary", `{"colors":{"primary":"#ffcc00"}}`, nil, "WCAG AA needs 4.5:1"},
		{"low contrast header", `{"colors":{"header":"#8899aa"}}`, nil, "colors.header"},
		{"long name", `{"name":"` + strings.Repeat("x", MaxBrandName+1) + `"}`, nil, "at most 40"},
		{"control in name", `{"name":"Acme\u0007"}`, nil, "control or format character"},
		{"bidi override in name", `{"name":"Acme\u202e"}`, nil, "control or format character"},
		{"no letters", `{"name":"---"}`, nil, "at least one letter"},
		{"missing logo", `{"logo":"nope.png"}`, nil, "no such file"},
		{"big logo", `{"logo":"l.svg"}`, map[string][]byte{"l.svg": append(append([]byte(`<svg xmlns="http://www.w3.org/2000/svg"><desc>`), bytes.Repeat([]byte("x"), MaxBrandLogo)...), []byte(`</desc></svg>`)...)}, "larger than 256 KiB"},
		{"huge png", `{"logo":"l.png"}`, map[string][]byte{"l.png": pngOf(t, 2000, 20)}, "2000×20 pixels"},
		{"tiny png", `{"logo":"l.png"}`, map[string][]byte{"l.png": pngOf(t, 8, 8)}, "each side must be"},
		{"gif", `{"logo":"l.gif"}`, map[string][]byte{"l.gif": []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;")}, "not a PNG, JPEG or SVG"},
		{"html as logo", `{"logo":"l.svg"}`, map[string][]byte{"l.svg": []byte(`<html><script>alert(1)</script></html>`)}, "not a PNG, JPEG or SVG"},
		{"svg script", `{"logo":"l.svg"}`, map[string][]byte{"l.svg": []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`)}, "<script>"},
		{"svg handler", `{"logo":"l.svg"}`, map[string][]byte{"l.svg": []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`)}, "event handler"},
		{"svg foreign object", `{"logo":"l.svg"}`, map[string][]byte{"l.svg": []byte(`<svg xmlns="http://www.w3.org/2000/svg"><foreignObject/></svg>`)}, "foreignObject"},
		{"svg external image", `{"logo":"l.svg"}`, map[string][]byte{"l.svg": []byte(`<svg xmlns="http://www.w3.org/2000/svg" xmlns:x="http://www.w3.org/1999/xlink"><image x:href="https://evil.example/t.png"/></svg>`)}, "refers to another file"},
		{"svg broken", `{"logo":"l.svg"}`, map[string][]byte{"l.svg": []byte(`<svg xmlns="http://www.w3.org/2000/svg"><rect></svg>`)}, "not well-formed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := writeBrand(t, c.json, c.files)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v (%v), want an error with %q", err, b, c.want)
			}
		})
	}
}

func TestContrastMatchesWCAG(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want float64
	}{
		{"#000000", "#ffffff", 21},
		{"#ffffff", "#ffffff", 1},
		{"#0172ad", "#ffffff", 5.23}, // Pico's default primary
		{"#767676", "#ffffff", 4.54},
	} {
		if got := Contrast(c.a, c.b); got < c.want-0.05 || got > c.want+0.05 {
			t.Errorf("Contrast(%s, %s) = %.2f, want %.2f", c.a, c.b, got, c.want)
		}
	}
}

func TestBrandIsServedAsFilesUnderAStrictPolicy(t *testing.T) {
	svg := []byte(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>`)
	b, err := writeBrand(t, `{"name":"Acme <Remote>","logo":"l.svg","colors":{"primary":"#0b5cad","header":"#102a43"}}`, map[string][]byte{"l.svg": svg})
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]http.Handler{"app": AppWith(AppOptions{Brand: b}), "session": Shell(Options{Brand: b})} {
		prefix, host := "", "localhost:8080"
		if name == "session" {
			prefix, host = strings.TrimSuffix(ShellPrefix, "/"), shellHost
		}
		res := get(t, h, host, http.MethodGet, prefix+"/brand.json", nil)
		var view struct{ Name, Logo string }
		if err := json.Unmarshal([]byte(body(t, res)), &view); err != nil || view.Name != "Acme <Remote>" || !strings.HasPrefix(view.Logo, "brand-logo?v=") {
			t.Fatalf("%s brand.json: %v %+v", name, err, view)
		}
		css := body(t, get(t, h, host, http.MethodGet, prefix+"/brand.css", nil))
		for _, want := range []string{"--pico-primary:#0b5cad;", "--ph-header:#102a43;", "--pico-primary-hover:#094e93;"} {
			if !strings.Contains(css, want) {
				t.Errorf("%s brand.css lacks %q:\n%s", name, want, css)
			}
		}
		res = get(t, h, host, http.MethodGet, prefix+"/brand-logo", nil)
		if res.Header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(res.Header.Get("Content-Security-Policy"), "sandbox") ||
			!strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'none'") || body(t, res) != string(svg) {
			t.Errorf("%s logo: %q %q", name, res.Header.Get("Content-Type"), res.Header.Get("Content-Security-Policy"))
		}
		checkStrictHeaders(t, res)
	}
	// The app page itself keeps its policy: no inline style, no inline script.
	res := get(t, AppWith(AppOptions{Brand: b}), "localhost:8080", http.MethodGet, "/", nil)
	if csp := res.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "style-src 'self'") {
		t.Fatalf("app CSP %q", csp)
	}
}

func TestDefaultBrandHasNoLogoAndNoOverrides(t *testing.T) {
	h := App()
	if res := get(t, h, "localhost:8080", http.MethodGet, "/brand-logo", nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("default logo: %d", res.StatusCode)
	}
	if css := body(t, get(t, h, "localhost:8080", http.MethodGet, "/brand.css", nil)); strings.Contains(css, "{") {
		t.Fatalf("default brand.css sets properties: %s", css)
	}
	if b := body(t, get(t, h, "localhost:8080", http.MethodGet, "/brand.json", nil)); b != `{"name":"Porthole"}` {
		t.Fatalf("default brand.json %s", b)
	}
}
