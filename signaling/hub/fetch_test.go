package hub

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/porthole-dev/porthole/internal/fetchx"
	"github.com/porthole-dev/porthole/proto"
)

// fallbackSession is a ready session with a client that got its ticket.
type fallbackSession struct {
	b      *bubble
	agent  *peer
	client *peer
	id     string
	ticket string
}

func newFallbackSession(t *testing.T, b *bubble, agent *peer, device string) *fallbackSession {
	t.Helper()
	res := make(chan *proto.SessionInfo, 1)
	go func() {
		info, err := b.hub.OpenSession(context.Background(), "alice", device)
		if err != nil {
			t.Error(err)
		}
		res <- info
	}()
	env := recv(t, agent, proto.TypeSessionOpen, nil)
	send(t, agent, proto.TypeSessionReady, env.Session, struct{}{})
	info := <-res
	c := b.dial("/client?session=" + info.Session)
	send(t, c, proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient})
	recv(t, c, proto.TypeWelcome, nil)
	var ready proto.SessionReady
	recv(t, c, proto.TypeSessionReady, &ready)
	if !proto.ValidTicket(ready.RelayTicket) {
		t.Fatalf("session.ready carries no ticket: %+v", ready)
	}
	return &fallbackSession{b: b, agent: agent, client: c, id: info.Session, ticket: ready.RelayTicket}
}

func fetchAgent(t *testing.T, b *bubble, version int) *peer {
	agent := b.dial("/agent")
	send(t, agent, proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Fetch: version,
		Devices: []proto.Device{{ID: "printer-1"}, {ID: "printer-2"}}})
	recv(t, agent, proto.TypeWelcome, nil)
	return agent
}

// open opens an exchange whose route is a fetchx.Exchange.
func (fs *fallbackSession) open(cookie [32]byte) (*fetchx.Exchange, func(), error) {
	var x *fetchx.Exchange
	release, err := fs.b.hub.OpenFetch(fs.id, cookie, func(id uint64, send fetchx.Sender) FetchRoute {
		x = fetchx.New(id, send, 0)
		return x
	})
	return x, release, err
}

func TestRelayTicketIsSingleUseAndShortLived(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		agent := fetchAgent(t, b, proto.FetchVersion)
		fs := newFallbackSession(t, b, agent, "printer-1")
		other := newFallbackSession(t, b, agent, "printer-2")
		cookie := sha256.Sum256([]byte("cookie-1"))

		if _, err := b.hub.RedeemTicket(fs.id, other.ticket, cookie); !errors.Is(err, ErrTicket) {
			t.Fatalf("another session's ticket: %v", err)
		}
		if _, err := b.hub.RedeemTicket(fs.id, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", cookie); !errors.Is(err, ErrTicket) {
			t.Fatalf("a forged ticket: %v", err)
		}
		exp, err := b.hub.RedeemTicket(fs.id, fs.ticket, cookie)
		if err != nil || exp.IsZero() {
			t.Fatalf("the session's own ticket: %v", err)
		}
		if _, err := b.hub.RedeemTicket(fs.id, fs.ticket, sha256.Sum256([]byte("cookie-2"))); !errors.Is(err, ErrTicket) {
			t.Fatalf("a ticket used twice: %v", err)
		}
		// A ticket not redeemed in time is worthless.
		time.Sleep(proto.RelayTicketTTL + time.Second)
		if _, err := b.hub.RedeemTicket(other.id, other.ticket, cookie); !errors.Is(err, ErrTicket) {
			t.Fatalf("an expired ticket: %v", err)
		}
		// The cookie opens its own session only.
		if _, _, err := (&fallbackSession{b: b, id: other.id}).open(cookie); !errors.Is(err, ErrDeviceCookie) {
			t.Fatalf("a cookie of another session: %v", err)
		}
		if _, _, err := fs.open(sha256.Sum256([]byte("forged"))); !errors.Is(err, ErrDeviceCookie) {
			t.Fatalf("a forged cookie: %v", err)
		}
		x, release, err := fs.open(cookie)
		if err != nil {
			t.Fatalf("the session's cookie: %v", err)
		}
		x.Close()
		release()
	})
}

// playAgent answers one fetch.request on the agent's socket with status
// and body, crediting nothing (body ≤ one window).
func playAgent(t *testing.T, agent *peer, body string) {
	t.Helper()
	var req proto.FetchRequest
	env := recv(t, agent, proto.TypeFetchRequest, &req)
	recv(t, agent, proto.TypeFetchEnd, nil)
	send(t, agent, proto.TypeFetchResponse, env.Session, &proto.FetchResponse{ID: req.ID, ResponseHead: proto.ResponseHead{Status: 200}})
	send(t, agent, proto.TypeFetchData, env.Session, &proto.FetchData{ID: req.ID, Data: []byte(body)})
	send(t, agent, proto.TypeFetchEnd, env.Session, &proto.FetchEnd{ID: req.ID})
}

func TestOpenFetchCarriesAnExchangeToTheAgent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		agent := fetchAgent(t, b, proto.FetchVersion)
		fs := newFallbackSession(t, b, agent, "printer-1")
		cookie := sha256.Sum256([]byte("c"))
		if _, err := b.hub.RedeemTicket(fs.id, fs.ticket, cookie); err != nil {
			t.Fatal(err)
		}
		x, release, err := fs.open(cookie)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		go playAgent(t, agent, "hello")
		ctx := context.Background()
		if err := x.SendHead(ctx, &proto.FetchRequest{RequestHead: proto.RequestHead{Method: "GET", Target: "/x"}}); err != nil {
			t.Fatal(err)
		}
		_ = x.End(ctx)
		h, err := x.Head(ctx, time.Second)
		if err != nil || h.(*proto.FetchResponse).Status != 200 {
			t.Fatalf("head %v %v", h, err)
		}
		p, err := x.Read(ctx)
		if err != nil || string(p) != "hello" {
			t.Fatalf("body %q %v", p, err)
		}
		if _, err := x.Read(ctx); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
	})
}

func TestOpenFetchRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		old := fetchAgent(t, b, 0)
		fs := newFallbackSession(t, b, old, "printer-1")
		cookie := sha256.Sum256([]byte("c"))
		if _, err := b.hub.RedeemTicket(fs.id, fs.ticket, cookie); err != nil {
			t.Fatal(err)
		}
		if _, _, err := fs.open(cookie); !errors.Is(err, ErrOldAgent) {
			t.Fatalf("an agent without the fallback: %v", err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		agent := fetchAgent(t, b, proto.FetchVersion)
		fs := newFallbackSession(t, b, agent, "printer-1")
		cookie := sha256.Sum256([]byte("c"))
		if _, err := b.hub.RedeemTicket(fs.id, fs.ticket, cookie); err != nil {
			t.Fatal(err)
		}
		var open []*fetchx.Exchange
		for range proto.MaxFetchesPerSession {
			x, release, err := fs.open(cookie)
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			open = append(open, x)
		}
		if _, _, err := fs.open(cookie); !errors.Is(err, ErrFetchLimit) {
			t.Fatalf("one past the cap: %v", err)
		}
		// The session ends: every exchange in flight is aborted, and the
		// cookie opens nothing more.
		if err := b.hub.EndSession(fs.id, "alice"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		for i, x := range open {
			if _, err := x.Head(context.Background(), time.Second); proto.CodeOf(err) != proto.CodeSessionEnded && !errors.Is(err, fetchx.ErrClosed) {
				t.Fatalf("exchange %d after the session ended: %v", i, err)
			}
		}
		if _, _, err := fs.open(cookie); !errors.Is(err, ErrNoSession) {
			t.Fatalf("after the end: %v", err)
		}
	})
}

// TestSlowFallbackNeverDisconnectsTheAgent: an agent whose socket is not
// read fills its bulk queue; the exchange's sender waits and gives up
// with its context, and the agent stays connected. An agent that
// overruns the credit window loses that exchange, not its connection.
func TestSlowFallbackNeverDisconnectsTheAgent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		agent := fetchAgent(t, b, proto.FetchVersion)
		fs := newFallbackSession(t, b, agent, "printer-1")
		cookie := sha256.Sum256([]byte("c"))
		if _, err := b.hub.RedeemTicket(fs.id, fs.ticket, cookie); err != nil {
			t.Fatal(err)
		}
		var send fetchx.Sender
		release, err := b.hub.OpenFetch(fs.id, cookie, func(id uint64, s fetchx.Sender) FetchRoute {
			send = s
			return fetchx.New(id, s, 0)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		// The test's agent reader holds 16 messages, net.Pipe none: the
		// queue fills after a few dozen.
		waited := false
		for i := range 1000 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := send(ctx, proto.TypeFetchData, &proto.FetchData{ID: 1, Data: []byte("x")})
			cancel()
			if err != nil {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("send %d: %v", i, err)
				}
				waited = true
				break
			}
		}
		if !waited {
			t.Fatal("the sender never waited")
		}
		if online := b.hub.OnlineAgents(); len(online) != 1 {
			t.Fatalf("the agent was disconnected by a full fetch queue: %v", online)
		}
		// Drain, then overrun a window.
		for len(agent.in) > 0 {
			<-agent.in
		}
		synctest.Wait()
		for len(agent.in) > 0 {
			<-agent.in
			synctest.Wait()
		}
		x, release2, err := fs.open(cookie)
		if err != nil {
			t.Fatal(err)
		}
		defer release2()
		go func() {
			_ = x.SendHead(context.Background(), &proto.FetchRequest{RequestHead: proto.RequestHead{Method: "GET", Target: "/"}})
		}()
		var req proto.FetchRequest
		for {
			b, ok := <-agent.in
			if !ok {
				t.Fatal("agent disconnected")
			}
			env, _ := proto.Decode(b)
			if env != nil && env.Type == proto.TypeFetchRequest && proto.DecodeData(env, &req) == nil && req.ID == x.ID() {
				break
			}
		}
		sendTo := func(typ proto.MsgType, v any) { send2(t, agent, typ, fs.id, v) }
		sendTo(proto.TypeFetchResponse, &proto.FetchResponse{ID: req.ID, ResponseHead: proto.ResponseHead{Status: 200}})
		for range proto.FetchWindow + 1 {
			sendTo(proto.TypeFetchData, &proto.FetchData{ID: req.ID, Data: []byte("y")})
		}
		synctest.Wait()
		_, rerr := x.Head(context.Background(), time.Second)
		for rerr == nil {
			_, rerr = x.Read(context.Background())
		}
		if proto.CodeOf(rerr) != proto.CodeBadMessage && !errors.Is(rerr, fetchx.ErrClosed) {
			t.Fatalf("after an overrun: %v", rerr)
		}
		if online := b.hub.OnlineAgents(); len(online) != 1 {
			t.Fatalf("an overrunning agent was disconnected: %v", online)
		}
	})
}

func send2(t *testing.T, p *peer, typ proto.MsgType, session string, payload any) {
	t.Helper()
	send(t, p, typ, session, payload)
}

// TestLargeFallbackResponseIsNotRateLimited: an agent streams a response
// body of more chunks than its connection's token bucket holds (the
// default burst), as a download of a few tens of MiB through the
// signaling fallback does. Its fetch.* messages are bounded by the
// exchange's credit window, not by the connection's rate limit: every
// chunk arrives, nothing is refused, and the agent stays connected.
func TestLargeFallbackResponseIsNotRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		agent := fetchAgent(t, b, proto.FetchVersion)
		fs := newFallbackSession(t, b, agent, "printer-1")
		cookie := sha256.Sum256([]byte("c"))
		if _, err := b.hub.RedeemTicket(fs.id, fs.ticket, cookie); err != nil {
			t.Fatal(err)
		}
		x, release, err := fs.open(cookie)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		chunks := DefaultAgentBurst + 200
		refused := make(chan string, 1)
		go func() {
			var req proto.FetchRequest
			env := recv(t, agent, proto.TypeFetchRequest, &req)
			recv(t, agent, proto.TypeFetchEnd, nil)
			send(t, agent, proto.TypeFetchResponse, env.Session, &proto.FetchResponse{ID: req.ID, ResponseHead: proto.ResponseHead{Status: 200}})
			window := proto.FetchWindow
			for sent := 0; sent < chunks; {
				if window > 0 {
					send(t, agent, proto.TypeFetchData, env.Session, &proto.FetchData{ID: req.ID, Data: []byte("z")})
					sent++
					window--
					continue
				}
				msg, ok := <-agent.in
				if !ok {
					refused <- "the agent's connection closed"
					return
				}
				in, err := proto.Decode(msg)
				if err != nil {
					continue
				}
				switch in.Type {
				case proto.TypeFetchCredit:
					var c proto.FetchCredit
					if proto.DecodeData(in, &c) == nil {
						window += c.N
					}
				case proto.TypeError:
					refused <- string(msg)
					return
				}
			}
			send(t, agent, proto.TypeFetchEnd, env.Session, &proto.FetchEnd{ID: req.ID})
			refused <- ""
		}()
		ctx := context.Background()
		if err := x.SendHead(ctx, &proto.FetchRequest{RequestHead: proto.RequestHead{Method: "GET", Target: "/big"}}); err != nil {
			t.Fatal(err)
		}
		_ = x.End(ctx)
		if h, err := x.Head(ctx, time.Second); err != nil || h.(*proto.FetchResponse).Status != 200 {
			t.Fatalf("head %v %v", h, err)
		}
		got := 0
		for {
			p, err := x.Read(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("after %d of %d chunks: %v", got, chunks, err)
			}
			got += len(p)
		}
		if why := <-refused; why != "" {
			t.Fatalf("the agent was refused: %s", why)
		}
		if got != chunks {
			t.Fatalf("read %d bytes, want %d", got, chunks)
		}
		if online := b.hub.OnlineAgents(); len(online) != 1 {
			t.Fatalf("the agent was disconnected: %v", online)
		}
	})
}
