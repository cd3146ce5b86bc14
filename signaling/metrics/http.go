package metrics

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
)

// Route labels of requests that match no mux pattern.
const (
	RouteSessionOrigin = "session-origin" // <session>.<sessions domain>
	RouteOther         = "other"
)

// Instrument counts the requests h serves by route and status code. The
// route is the pattern of the http.ServeMux that served it (so its values
// are bounded by the routes, never the paths), or route(r) when it returns
// a label for a request the mux never saw. Wrapped writers keep Flush,
// Hijack (WebSockets) and ResponseController working.
func (m *Metrics) Instrument(h http.Handler, route func(*http.Request) string) http.Handler {
	if m == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		label := r.Pattern
		if label == "" && route != nil {
			label = route(r)
		}
		if label == "" {
			label = RouteOther
		}
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		m.requests.WithLabelValues(label, strconv.Itoa(code)).Inc()
	})
}

// statusRecorder remembers the status code a handler sent.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack hands over the connection (a WebSocket upgrade) and records 101.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("metrics: the response writer cannot hijack")
	}
	c, rw, err := h.Hijack()
	if err == nil && s.code == 0 {
		s.code = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

var (
	_ http.Flusher  = (*statusRecorder)(nil)
	_ http.Hijacker = (*statusRecorder)(nil)
)
