package demodevice

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"time"
)

var zeroTime time.Time

// Status is the JSON body of /api/status.
type Status struct {
	Model         string   `json:"model"`
	Serial        string   `json:"serial"`
	MAC           string   `json:"mac"`
	Hostname      string   `json:"hostname"`
	Firmware      string   `json:"firmware"`
	Status        string   `json:"status"`
	PageCount     int      `json:"pageCount"`
	Supplies      []Supply `json:"supplies"`
	UptimeSeconds int64    `json:"uptimeSeconds"`
	Time          string   `json:"time"`
}

func (d *Device) handleAPIStatus(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	writeJSON(w, http.StatusOK, Status{
		Model:         d.cfg.Model,
		Serial:        d.cfg.Serial,
		MAC:           d.cfg.MAC,
		Hostname:      d.Settings().Hostname,
		Firmware:      FirmwareVersion,
		Status:        "Ready",
		PageCount:     totalPages,
		Supplies:      supplies,
		UptimeSeconds: int64(now.Sub(d.started) / time.Second),
		Time:          now.UTC().Format(time.RFC3339),
	})
}

func (d *Device) handleAPIStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, d.stats.Snapshot())
}

// UploadResult is the JSON body of /upload.
type UploadResult struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

func (d *Device) handleUpload(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, tooBig, err := drainLimited(h, r.Body, d.cfg.MaxUploadBytes)
	switch {
	case tooBig:
		http.Error(w, fmt.Sprintf("upload larger than %d bytes", d.cfg.MaxUploadBytes), http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "reading upload: "+err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusOK, UploadResult{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))})
}

// Echo is the JSON body of /echo.
type Echo struct {
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	RawQuery   string              `json:"rawQuery"`
	Query      map[string][]string `json:"query"`
	Host       string              `json:"host"`
	Proto      string              `json:"proto"`
	Headers    map[string][]string `json:"headers"`
	BodyLength int64               `json:"bodyLength"`
}

func (d *Device) handleEcho(w http.ResponseWriter, r *http.Request) {
	n, tooBig, err := drainLimited(io.Discard, r.Body, d.cfg.MaxUploadBytes)
	switch {
	case tooBig:
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusOK, Echo{
		Method:     r.Method,
		Path:       r.URL.Path,
		RawQuery:   r.URL.RawQuery,
		Query:      r.URL.Query(),
		Host:       r.Host,
		Proto:      r.Proto,
		Headers:    r.Header,
		BodyLength: n,
	})
}

// Bounds of /slow.
const (
	maxSlowMillis = 60_000
	maxSlowChunks = 10_000
)

func (d *Device) handleSlow(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ms, err1 := queryInt(q.Get("ms"), 100, 0, maxSlowMillis)
	chunks, err2 := queryInt(q.Get("chunks"), 10, 1, maxSlowChunks)
	if err := errors.Join(err1, err2); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	interval := time.Duration(ms) * time.Millisecond
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for i := range chunks {
		if i > 0 {
			select {
			case <-timer.C:
			case <-r.Context().Done():
				d.stats.Aborted.Add(1)
				return
			}
		}
		_, err := fmt.Fprintf(w, "chunk %d of %d at %s\n", i+1, chunks, time.Now().UTC().Format("15:04:05.000"))
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			d.stats.Aborted.Add(1)
			return
		}
		timer.Reset(interval)
	}
}

func queryInt(v string, def, lo, hi int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q: want an integer from %d to %d", v, lo, hi)
	}
	return n, nil
}

func (d *Device) handleLogo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	http.ServeContent(w, r, "", zeroTime, bytes.NewReader(d.logo))
}

// drawLogo draws the 64×64 device logo: a porthole (white ring with a blue glass) on the
// brand blue, with a yellow sheet of paper coming out of it. The bytes are the same on every call.
func drawLogo() []byte {
	const size = 64
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	brand := color.NRGBA{0x0b, 0x4f, 0x8a, 0xff}
	glass := color.NRGBA{0x6c, 0xb8, 0xf0, 0xff}
	white := color.NRGBA{0xff, 0xff, 0xff, 0xff}
	paper := color.NRGBA{0xf0, 0xb3, 0x23, 0xff}
	for y := range size {
		for x := range size {
			fx, fy := float64(x)-31.5, float64(y)-31.5
			r2 := fx*fx + fy*fy
			c := brand
			switch {
			case r2 < 14*14:
				c = glass
				if x >= 24 && x < 40 && y >= 22 && y < 42 {
					c = paper
				}
			case r2 < 20*20:
				c = white
			}
			// Rounded corners: transparent outside a radius-10 corner.
			cx, cy := min(max(x, 10), size-11), min(max(y, 10), size-11)
			if dx, dy := x-cx, y-cy; dx*dx+dy*dy > 100 {
				c = color.NRGBA{}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		panic(err) // encoding to memory cannot fail
	}
	return buf.Bytes()
}
