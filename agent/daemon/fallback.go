package daemon

import (
	"context"

	"github.com/porthole-dev/porthole/agent/sigclient"
	"github.com/porthole-dev/porthole/proto"
)

// handleFetch hands a fetch message (a request signaling carries for the
// browser, agent/fallback) to its session, on conn, whose life is connCtx.
// It never blocks the connection's reader. A request for a session this
// agent does not serve, or one past its grant's expiry, is refused.
func (a *Agent) handleFetch(connCtx context.Context, conn *sigclient.Conn, env *proto.Envelope) {
	s := a.session(env.Session)
	if s != nil && !a.clock.Now().Before(s.expires) {
		s = nil // its expiry timer is about to end it
	}
	if s == nil {
		if env.Type != proto.TypeFetchRequest {
			return // the rest of an exchange that is over
		}
		var r proto.FetchRequest
		if err := proto.DecodeData(env, &r); err != nil || r.ID == 0 {
			return
		}
		a.log.Info("request via signaling refused: no such session", "session", env.Session, "exchange", r.ID)
		a.wg.Go(func() {
			ctx, cancel := context.WithTimeout(connCtx, signalingPingTimeout)
			defer cancel()
			_ = conn.SendWait(ctx, proto.TypeFetchAbort, env.Session, &proto.FetchAbort{ID: r.ID,
				Error: proto.Error{Code: proto.CodeSessionEnded, Message: "the agent serves no such session"}})
		})
		return
	}
	s.fetch.Handle(connCtx, env, func(ctx context.Context, typ proto.MsgType, payload proto.Validator) error {
		return conn.SendWait(ctx, typ, s.id, payload)
	})
}
