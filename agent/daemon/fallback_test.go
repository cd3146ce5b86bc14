package daemon

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/deviceid"
	"github.com/porthole-dev/porthole/proto"
)

// startCookieDevice is a device whose login sets an HttpOnly session
// cookie and whose /whoami says which cookies it got; /hang answers a head
// and then hangs until the request is cancelled.
func startCookieDevice(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"serial":"SER-1","host":"%s"}`, r.Host)
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "s3cret", Path: "/", HttpOnly: true})
		http.SetCookie(w, &http.Cookie{Name: "lang", Value: "en", Path: "/"})
		fmt.Fprint(w, "logged in")
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "cookie=%q origin=%q", r.Header.Get("Cookie"), r.Header.Get("Origin"))
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// fetchAnswer is what the agent sent back for one exchange.
type fetchAnswer struct {
	head  *proto.FetchResponse
	body  strings.Builder
	abort *proto.FetchAbort
	ended bool
}

// fetch sends one request over the fake signaling connection and collects
// the answer, crediting the body as it comes; other messages are kept.
func (h *harness) fetch(session string, id uint64, method, target string, hdr http.Header, body string) *fetchAnswer {
	h.t.Helper()
	h.send(proto.TypeFetchRequest, session, &proto.FetchRequest{ID: id, RequestHead: proto.RequestHead{
		Method: method, Target: target, Header: hdr, ContentLength: int64(len(body))}})
	if body != "" {
		h.send(proto.TypeFetchData, session, &proto.FetchData{ID: id, Data: []byte(body)})
	}
	h.send(proto.TypeFetchEnd, session, &proto.FetchEnd{ID: id})
	return h.collect(session, id, true)
}

func (h *harness) collect(session string, id uint64, untilEnd bool) *fetchAnswer {
	h.t.Helper()
	a := &fetchAnswer{}
	chunks := 0
	for {
		env := h.next()
		switch env.Type {
		case proto.TypeFetchResponse:
			a.head = &proto.FetchResponse{}
			if err := proto.DecodeData(env, a.head); err != nil || a.head.ID != id {
				h.t.Fatalf("response head %+v: %v", a.head, err)
			}
			if !untilEnd {
				return a
			}
		case proto.TypeFetchData:
			var d proto.FetchData
			if err := proto.DecodeData(env, &d); err != nil || d.ID != id {
				h.t.Fatalf("data %v", err)
			}
			a.body.Write(d.Data)
			if chunks++; chunks%(proto.FetchWindow/2) == 0 {
				h.send(proto.TypeFetchCredit, session, &proto.FetchCredit{ID: id, N: proto.FetchWindow / 2})
			}
		case proto.TypeFetchEnd:
			a.ended = true
			return a
		case proto.TypeFetchAbort:
			a.abort = &proto.FetchAbort{}
			if err := proto.DecodeData(env, a.abort); err != nil {
				h.t.Fatal(err)
			}
			return a
		case proto.TypeAccessLog:
			h.logs = append(h.logs, env)
		}
	}
}

func cookieDeviceAgent(t *testing.T, mods ...func(*Config)) *harness {
	port := startCookieDevice(t)
	return startAgent(t, []DeviceConfig{{ID: "printer-1", Address: "127.0.0.1", HTTPPort: port,
		Expect: deviceid.Expect{Serial: "SER-1", HTTPProbe: &deviceid.HTTPProbe{Path: "/status", Pattern: `"serial":"([^"]+)"`}}}}, nil, mods...)
}

func TestFallbackUsesTheSessionsDeviceProxyAndAccessLog(t *testing.T) {
	h := cookieDeviceAgent(t)
	const sess = "sessfallback001"
	if env := h.open(sess, "printer-1", h.grant(validGrant(sess, "printer-1", time.Minute))); env.Type != proto.TypeSessionReady {
		t.Fatalf("open: %s", env.Type)
	}
	a := h.fetch(sess, 1, "GET", "/login", nil, "")
	if !a.ended || a.head.Status != 200 || a.body.String() != "logged in" {
		t.Fatalf("login: %+v %q", a.head, a.body.String())
	}
	// The device proxy's rules: the session's policy, cookies in the jar
	// (the non-HttpOnly one offered for mirroring), never Set-Cookie.
	if a.head.Header.Get("Set-Cookie") != "" || !strings.Contains(strings.Join(a.head.Header.Values("Content-Security-Policy"), ","), "frame-ancestors 'self'") {
		t.Fatalf("response head skipped the device proxy's rules: %v", a.head.Header)
	}
	if len(a.head.Cookies) != 1 || a.head.Cookies[0] != "lang=en" {
		t.Fatalf("cookies to mirror %v", a.head.Cookies)
	}
	// The session's jar serves the next request, whichever path it takes;
	// a POST gets the device's own Origin, as through the tunnel.
	a = h.fetch(sess, 2, "POST", "/whoami", http.Header{"Content-Type": {"text/plain"}}, "x")
	if got := a.body.String(); !strings.Contains(got, "sid=s3cret") || !strings.Contains(got, `origin="http://127.0.0.1:`) {
		t.Fatalf("device saw %s", got)
	}
	// Both exchanges are in the access log, marked with their path.
	deadline := time.Now().Add(10 * time.Second)
	var entries []proto.AccessEntry
	for len(entries) < 2 && time.Now().Before(deadline) {
		for _, env := range h.logs {
			var l proto.AccessLog
			if proto.DecodeData(env, &l) == nil {
				entries = append(entries, l.Entries...)
			}
		}
		h.logs = nil
		if len(entries) < 2 {
			if env := h.next(); env.Type == proto.TypeAccessLog {
				h.logs = append(h.logs, env)
			}
		}
	}
	if len(entries) < 2 {
		t.Fatalf("access log has %d entries", len(entries))
	}
	for _, e := range entries[len(entries)-2:] {
		if e.Via != proto.ViaSignaling || e.Status != 200 || e.Stream != 0 {
			t.Errorf("entry %+v", e)
		}
	}
	if entries[len(entries)-1].URL != "/whoami" || entries[len(entries)-1].ReqBytes != 1 {
		t.Errorf("last entry %+v", entries[len(entries)-1])
	}
}

func TestFallbackEndsAtTheGrantsExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Now().Truncate(time.Second)}
	h := cookieDeviceAgent(t, func(c *Config) { c.Clock = clock })
	const sess = "sessfbexpiry01"
	start := clock.Now()
	g := proto.Grant{Session: sess, Agent: testAgentID, Device: "printer-1", User: "tech",
		IssuedAt: start.Unix(), Expires: start.Add(30 * time.Minute).Unix()}
	h.send(proto.TypeSessionOpen, sess, &proto.SessionOpen{Device: "printer-1", User: "tech", Expires: start.Add(30 * time.Minute), Grant: h.grant(g)})
	if env := h.next(); env.Type != proto.TypeSessionReady {
		t.Fatalf("open: %s", env.Type)
	}
	// A response in progress when the grant expires is cut off.
	h.send(proto.TypeFetchRequest, sess, &proto.FetchRequest{ID: 1, RequestHead: proto.RequestHead{Method: "GET", Target: "/hang"}})
	h.send(proto.TypeFetchEnd, sess, &proto.FetchEnd{ID: 1})
	if a := h.collect(sess, 1, false); a.head == nil || a.head.Status != 200 {
		t.Fatalf("hang: %+v", a)
	}
	clock.Advance(30 * time.Minute)
	var sawEnd, sawAbort bool
	for !sawEnd || !sawAbort {
		env := h.next()
		switch env.Type {
		case proto.TypeSessionEnd:
			sawEnd = true
		case proto.TypeFetchAbort:
			var ab proto.FetchAbort
			if proto.DecodeData(env, &ab) != nil || ab.ID != 1 {
				t.Fatalf("abort %+v", ab)
			}
			sawAbort = true
		case proto.TypeFetchEnd:
			t.Fatal("the response ended normally after the grant expired")
		}
	}
	// Nothing is served after it.
	a := h.fetch(sess, 2, "GET", "/status", nil, "")
	if a.abort == nil || a.abort.Code != proto.CodeSessionEnded {
		t.Fatalf("request after expiry: %+v", a)
	}
}
