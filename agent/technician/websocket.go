package technician

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/porthole-dev/porthole/agent/tunnel"
	"github.com/porthole-dev/porthole/internal/redact"
	"github.com/porthole-dev/porthole/proto"
)

// serveWebSocket carries a WebSocket that a page on the local listener
// opens to the device: the agent opens the real one (tunnel
// DialWebSocket), and this bridges the two message by message, close codes
// included. Only a page of the listener's own origin (or a client that
// sends no Origin) may open one: another site the technician visits must
// not reach the device through the listener (cross-site WebSocket
// hijacking).
func (s *Session) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	origin := "http://" + r.Host
	if o := r.Header.Get("Origin"); o != "" && o != origin {
		s.log.Info("websocket from another origin refused", "origin", o)
		http.Error(w, "porthole: WebSocket from another origin", http.StatusForbidden)
		return
	}
	hdr := http.Header{}
	for _, k := range []string{"Cookie", "User-Agent", "Accept-Language"} {
		if v := r.Header.Values(k); len(v) > 0 {
			hdr[k] = v
		}
	}
	open := proto.WSOpen{Target: r.URL.RequestURI(), Protocols: websocket.Subprotocols(r), Header: hdr}
	if proto.ValidOrigin(origin) {
		open.ClientOrigin = origin
	}
	ws, err := s.Client.DialWebSocket(r.Context(), open)
	if err != nil {
		s.log.Info("websocket refused", "target", redact.Target(open.Target), "err", err)
		status := http.StatusBadGateway
		if proto.CodeOf(err) == proto.CodePortNotAllowed {
			status = http.StatusForbidden
		}
		http.Error(w, "porthole: "+err.Error(), status)
		return
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }} // checked above
	if p := ws.Protocol(); p != "" {
		up.Subprotocols = []string{p}
	}
	var respHdr http.Header
	for _, c := range ws.Opened().Cookies {
		respHdr = http.Header{}
		respHdr.Add("Set-Cookie", c+"; Path=/")
	}
	local, err := up.Upgrade(w, r, respHdr)
	if err != nil {
		_ = ws.Close(proto.WSCloseProtocol, "")
		return
	}
	local.SetReadLimit(proto.MaxWSMessage)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { // device → local page
		defer close(done)
		for {
			binary, msg, err := ws.ReadMessage()
			if err != nil {
				var ce *tunnel.WebSocketCloseError
				code, reason := websocket.CloseAbnormalClosure, ""
				if errors.As(err, &ce) {
					code, reason = ce.Code, ce.Reason
				}
				_ = local.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
				_ = local.Close()
				return
			}
			typ := websocket.TextMessage
			if binary {
				typ = websocket.BinaryMessage
			}
			if local.WriteMessage(typ, msg) != nil {
				cancel()
				return
			}
		}
	}()
	for { // local page → device
		typ, msg, err := local.ReadMessage()
		if err != nil {
			code, reason := 0, ""
			var ce *websocket.CloseError
			if errors.As(err, &ce) && proto.ValidWSCloseCode(ce.Code) {
				code, reason = ce.Code, ce.Text
			}
			_ = ws.Close(code, reason)
			break
		}
		if ws.WriteMessage(ctx, typ == websocket.BinaryMessage, msg) != nil {
			break
		}
	}
	<-done
}
