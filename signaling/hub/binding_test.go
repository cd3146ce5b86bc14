package hub

import (
	"crypto/sha256"
	"errors"
	"net/url"
	"testing"
	"testing/synctest"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// openAccepted opens a session on printer-1 that agent accepts; no client
// joins.
func openAccepted(t *testing.T, b *bubble, agent *peer) *proto.SessionInfo {
	t.Helper()
	res := make(chan *proto.SessionInfo, 1)
	go func() {
		info, err := b.hub.OpenSession(t.Context(), "alice", "printer-1")
		if err != nil {
			t.Error(err)
		}
		res <- info
	}()
	env := recv(t, agent, proto.TypeSessionOpen, nil)
	send(t, agent, proto.TypeSessionReady, env.Session, struct{}{})
	return <-res
}

// hello dials a client of session with the given proofs and says hello.
func hello(t *testing.T, b *bubble, session, token, bind string, browser bool) *peer {
	t.Helper()
	q := url.Values{"session": {session}, "token": {token}}
	if bind != "" {
		q.Set("bind", bind)
	}
	if browser {
		q.Set("browser", "1")
	}
	c := b.dial("/client?" + q.Encode())
	send(t, c, proto.TypeHello, "", &proto.Hello{Role: proto.RoleClient})
	return c
}

func joined(t *testing.T, c *peer) proto.SessionReady {
	t.Helper()
	recv(t, c, proto.TypeWelcome, nil)
	var r proto.SessionReady
	recv(t, c, proto.TypeSessionReady, &r)
	return r
}

func refusedWith(t *testing.T, c *peer, code proto.Code) {
	t.Helper()
	var e proto.Error
	recv(t, c, proto.TypeError, &e)
	if e.Code != code {
		t.Fatalf("refused with %s (%s), want %s", e.Code, e.Message, code)
	}
	if _, ok := <-c.in; ok {
		t.Fatal("the refused connection stayed open")
	}
}

// stillServes checks that c is the session's client: its offer reaches the
// agent.
func stillServes(t *testing.T, c, agent *peer, session string) {
	t.Helper()
	send(t, c, proto.TypeOffer, session, &proto.SessionDescription{Type: "offer", SDP: "v=0\r\n"})
	recv(t, agent, proto.TypeOffer, nil)
}

func bind(t *testing.T, h *Hub, session, token, secret string) error {
	t.Helper()
	return h.BindToken(session, sha256.Sum256([]byte(token)), sha256.Sum256([]byte(secret)))
}

// TestOneClientPerSession: the first client holds the session; another
// token is refused while the holder is connected and while it is away in
// its grace period, and the holder's connection is never replaced by it.
// The holder itself (same token, same binding) reconnecting replaces its
// old connection: a reload.
func TestOneClientPerSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		agent := helloAgent(t, b)
		info := openAccepted(t, b, agent)
		oauth := "oauth-token-of-a-second-window"
		if _, err := b.hub.AddToken(info.Session, sha256.Sum256([]byte(oauth))); err != nil {
			t.Fatal(err)
		}
		if err := bind(t, b.hub, info.Session, info.Token, "cookie-1"); err != nil {
			t.Fatal(err)
		}
		// A second window bound its token before the first joined.
		if err := bind(t, b.hub, info.Session, oauth, "cookie-2"); err != nil {
			t.Fatal(err)
		}
		holder := hello(t, b, info.Session, info.Token, "cookie-1", true)
		joined(t, holder)

		// The second window is refused, and the holder keeps the session.
		refusedWith(t, hello(t, b, info.Session, oauth, "cookie-2", true), proto.CodeSessionInUse)
		refusedWith(t, hello(t, b, info.Session, oauth, "", false), proto.CodeUnauthorized)
		stillServes(t, holder, agent, info.Session)
		// A third can no longer bind.
		third := "third-token"
		if _, err := b.hub.AddToken(info.Session, sha256.Sum256([]byte(third))); err != nil {
			t.Fatal(err)
		}
		if err := bind(t, b.hub, info.Session, third, "cookie-3"); !errors.Is(err, ErrSessionInUse) {
			t.Fatalf("binding a third window's token: %v, want session_in_use", err)
		}

		// The holder reloads: its new connection replaces the old one.
		again := hello(t, b, info.Session, info.Token, "cookie-1", true)
		joined(t, again)
		if _, ok := <-holder.in; ok {
			t.Fatal("the holder's old connection stayed open")
		}
		stillServes(t, again, agent, info.Session)

		// Away in its grace period, the holder still holds the session.
		again.ws.Close()
		time.Sleep(DefaultClientGrace / 2)
		refusedWith(t, hello(t, b, info.Session, oauth, "cookie-2", true), proto.CodeSessionInUse)
		back := hello(t, b, info.Session, info.Token, "cookie-1", true)
		joined(t, back)
		stillServes(t, back, agent, info.Session)
	})
}

// TestSessionInUseAcrossTokens: two bound windows; the second to say hello
// is refused with session_in_use and a message a person can act on.
func TestSessionInUseAcrossTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		agent := helloAgent(t, b)
		info := openAccepted(t, b, agent)
		second := "second-oauth-token"
		if _, err := b.hub.AddToken(info.Session, sha256.Sum256([]byte(second))); err != nil {
			t.Fatal(err)
		}
		// Both bind before either joins (two tabs racing).
		if err := bind(t, b.hub, info.Session, info.Token, "c1"); err != nil {
			t.Fatal(err)
		}
		if err := bind(t, b.hub, info.Session, second, "c2"); err != nil {
			t.Fatal(err)
		}
		first := hello(t, b, info.Session, info.Token, "c1", true)
		joined(t, first)
		c := hello(t, b, info.Session, second, "c2", true)
		var e proto.Error
		recv(t, c, proto.TypeError, &e)
		if e.Code != proto.CodeSessionInUse || e.Message != ErrSessionInUse.Message {
			t.Fatalf("second window: %+v", e)
		}
		stillServes(t, first, agent, info.Session)
	})
}

// TestBindingRules: what a bound token, an unbound one, a browser and a
// non-browser client may do, each on a fresh session.
func TestBindingRules(t *testing.T) {
	const oauth = "oauth-issued-token"
	cases := []struct {
		name    string
		bindAPI string // bind the API token to this cookie first
		token   string // "api" or oauth
		cookie  string
		browser bool
		want    proto.Code // "" joins
	}{
		{"API token, unbound, no browser (the CLI)", "", "api", "", false, ""},
		{"API token, unbound, browser", "", "api", "", true, proto.CodeUnauthorized},
		{"OAuth token, unbound, no browser", "", oauth, "", false, proto.CodeUnauthorized},
		{"OAuth token, unbound, browser", "", oauth, "", true, proto.CodeUnauthorized},
		{"bound token with its cookie", "c", "api", "c", true, ""},
		{"bound token with its cookie, no Origin", "c", "api", "c", false, ""},
		{"bound token without cookie (copied out of the browser)", "c", "api", "", false, proto.CodeUnauthorized},
		{"bound token without cookie, as a browser", "c", "api", "", true, proto.CodeUnauthorized},
		{"bound token with another cookie", "c", "api", "forged", true, proto.CodeUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBubble(t, Options{})
				agent := helloAgent(t, b)
				info := openAccepted(t, b, agent)
				if _, err := b.hub.AddToken(info.Session, sha256.Sum256([]byte(oauth))); err != nil {
					t.Fatal(err)
				}
				if tc.bindAPI != "" {
					if err := bind(t, b.hub, info.Session, info.Token, tc.bindAPI); err != nil {
						t.Fatal(err)
					}
				}
				token := tc.token
				if token == "api" {
					token = info.Token
				}
				c := hello(t, b, info.Session, token, tc.cookie, tc.browser)
				if tc.want == "" {
					if r := joined(t, c); r.RelayTicket == "" {
						t.Error("session.ready without a relay ticket")
					}
					return
				}
				refusedWith(t, c, tc.want)
				// A refused client does not hold the session.
				if tc.bindAPI == "" {
					if err := bind(t, b.hub, info.Session, info.Token, "late"); err != nil {
						t.Fatalf("bind after a refusal: %v", err)
					}
				}
			})
		})
	}
}

func TestBindTokenRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		agent := helloAgent(t, b)
		info := openAccepted(t, b, agent)
		if err := bind(t, b.hub, info.Session, "not-a-token-of-it", "c"); !errors.Is(err, ErrNoSession) {
			t.Errorf("unknown token: %v", err)
		}
		if err := bind(t, b.hub, "nosuchsession0000", info.Token, "c"); !errors.Is(err, ErrNoSession) {
			t.Errorf("unknown session: %v", err)
		}
		if err := bind(t, b.hub, info.Session, info.Token, "c"); err != nil {
			t.Fatal(err)
		}
		if err := bind(t, b.hub, info.Session, info.Token, "attacker"); !errors.Is(err, ErrAlreadyBound) {
			t.Errorf("second bind of a token: %v, want already bound", err)
		}
		// Another session's token does not bind on this one.
		other := openAccepted(t, b, agent)
		if err := bind(t, b.hub, info.Session, other.Token, "c"); !errors.Is(err, ErrNoSession) {
			t.Errorf("other session's token: %v", err)
		}
		// An API caller holding its session unbound keeps it: its token
		// cannot be bound to a cookie from under it.
		cli := hello(t, b, other.Session, other.Token, "", false)
		joined(t, cli)
		if err := bind(t, b.hub, other.Session, other.Token, "c"); !errors.Is(err, ErrSessionInUse) {
			t.Errorf("binding the token of an unbound holder: %v, want session_in_use", err)
		}
		stillServes(t, cli, agent, other.Session)
	})
}

func TestRelayTickets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{})
		agent := helloAgent(t, b)
		info := openAccepted(t, b, agent)
		r1 := joined(t, hello(t, b, info.Session, info.Token, "", false))
		if b.hub.ConsumeRelayTicket(info.Session, "guess") {
			t.Fatal("a guessed ticket passed")
		}
		if !b.hub.ConsumeRelayTicket(info.Session, r1.RelayTicket) {
			t.Fatal("the ticket of session.ready did not pass")
		}
		if b.hub.ConsumeRelayTicket(info.Session, r1.RelayTicket) {
			t.Fatal("a ticket passed twice")
		}
		// Each hello gets its own; an old one expires.
		r2 := joined(t, hello(t, b, info.Session, info.Token, "", false))
		other := openAccepted(t, b, agent)
		if r2.RelayTicket == r1.RelayTicket || b.hub.ConsumeRelayTicket(other.Session, r2.RelayTicket) {
			t.Fatal("a ticket passed for another session")
		}
		time.Sleep(proto.RelayTicketTTL + time.Second)
		if b.hub.ConsumeRelayTicket(info.Session, r2.RelayTicket) {
			t.Fatal("an expired ticket passed")
		}
		// A client reconnecting in a loop does not grow the list.
		for range 3 * maxRelayTickets {
			joined(t, hello(t, b, info.Session, info.Token, "", false))
		}
		b.hub.mu.Lock()
		n := len(b.hub.sessions[info.Session].tickets)
		b.hub.mu.Unlock()
		if n > maxRelayTickets {
			t.Fatalf("%d tickets kept, limit %d", n, maxRelayTickets)
		}
	})
}

// TestSessionReadyNamesDeviceAndSite: the session window is told the
// device's name and its site's name, not only the device's ID.
func TestSessionReadyNamesDeviceAndSite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, Options{
			AgentSite: func(string) string { return "lab" },
			SiteName: func(site string) string {
				if site != "lab" {
					t.Errorf("SiteName(%q)", site)
				}
				return "Acme GmbH"
			},
		})
		agent := b.dial("/agent")
		send(t, agent, proto.TypeHello, "", &proto.Hello{Role: proto.RoleAgent, Devices: []proto.Device{{ID: "printer-1", Name: "Demo printer"}}})
		recv(t, agent, proto.TypeWelcome, nil)
		info := openAccepted(t, b, agent)
		r := joined(t, hello(t, b, info.Session, info.Token, "", false))
		if r.Device != "printer-1" || r.DeviceName != "Demo printer" || r.SiteName != "Acme GmbH" {
			t.Fatalf("session.ready = %+v", r)
		}
	})
}
