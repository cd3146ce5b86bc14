package technician

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/internal/redact"
	"github.com/porthole-dev/porthole/proto"
)

// HTTPHandler serves the device's web page through the session: every
// request goes over the tunnel to the agent, which performs it against the
// device. It trusts whoever reaches it: ServeHTTP puts LocalOnly in front.
func (s *Session) HTTPHandler() http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			// The agent picks the device address; the tunnel carries only
			// the path. Scheme and host here just make the URL absolute.
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = s.Info.Device
			r.Out.Header.Del("X-Forwarded-For")
			// The device's absolute URLs are rewritten to this listener
			// (the agent needs its origin for that).
			if o := "http://" + r.In.Host; proto.ValidOrigin(o) {
				r.Out = r.Out.WithContext(tunnel.WithClientOrigin(r.Out.Context(), o))
			}
		},
		Transport:     s.Client,
		BufferPool:    s.bufs,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Info("tunnelled request failed", "method", r.Method, "target", redact.Target(r.URL.RequestURI()), "err", err)
			status := http.StatusBadGateway
			if errors.Is(err, context.DeadlineExceeded) {
				status = http.StatusGatewayTimeout
			}
			http.Error(w, "porthole: "+err.Error(), status)
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			s.serveWebSocket(w, r) // websocket.go
			return
		}
		rp.ServeHTTP(w, r)
	})
}

// ServeHTTP serves HTTPHandler on ln, behind LocalOnly, until ctx ends or
// the session ends.
func (s *Session) ServeHTTP(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           LocalOnly(ln.Addr(), s.HTTPHandler(), s.log),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case <-s.ended:
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-errc
	return nil
}

// Forward accepts TCP connections on ln and carries each to port of the
// device over its own tunnel stream, until ctx ends or the session ends.
// refused, if set, is told why a connection could not be carried (the
// agent's refusal, such as port_not_allowed) before it is closed.
func (s *Session) Forward(ctx context.Context, ln net.Listener, port int, refused func(error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.ended:
		}
		_ = ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			st, err := s.Client.DialTCP(ctx, port)
			if err != nil {
				s.log.Info("forward refused", "port", port, "err", err)
				if refused != nil && ctx.Err() == nil {
					refused(err)
				}
				return
			}
			defer st.Close()
			if err := tunnel.Pipe(ctx, c, st); err != nil {
				s.log.Debug("forward ended", "port", port, "err", err)
			}
		}()
	}
}
