package tunnel_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/agent/tunnel"
)

// TestCompatThroughTheTunnel: what an old EWS needs arrives through a real
// pion pair: an untyped CGI answer typed as a browser would sniff it, the
// device's absolute URLs pointing at the client's origin, deleted cookies
// reported.
func TestCompatThroughTheTunnel(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/cgi-bin/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // a CGI that prints no type
		io.WriteString(w, "<html><body><a href=\"http://"+r.Host+"/cgi-bin/next\">next</a></body></html>")
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "ui_lang", Value: "", MaxAge: -1, Path: "/"})
		http.Redirect(w, r, "http://"+r.Host+"/login", http.StatusFound)
	})
	d := newDevice(t, mux, deviceOptions{})

	client := originClient(d, "http://127.0.0.1:8090")
	resp, err := client.Get("http://device/cgi-bin/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/html" {
		t.Errorf("Content-Type %q, want text/html", ct)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("nosniff dropped")
	}
	if want := `href="http://127.0.0.1:8090/cgi-bin/next"`; !strings.Contains(string(body), want) {
		t.Errorf("body %s, want %s", body, want)
	}

	resp, err = client.Get("http://device/logout")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/login" {
		t.Errorf("Location %q", loc)
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) != 1 || !strings.HasPrefix(sc[0], "ui_lang=;") || !strings.Contains(sc[0], "Max-Age=0") {
		t.Errorf("deletion not reported: %q", sc)
	}
}

// TestServerSentEventsStreamUnbuffered: events the device sends 150 ms
// apart arrive 150 ms apart, not all at the end.
func TestServerSentEventsStreamUnbuffered(t *testing.T) {
	const n, gap = 5, 150 * time.Millisecond
	d := newDevice(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		for i := range n {
			fmt.Fprintf(w, "id: %d\ndata: {\"counter\":%d}\n\n", i, i)
			w.(http.Flusher).Flush()
			time.Sleep(gap)
		}
	}), deviceOptions{})
	resp, err := originClient(d, "http://127.0.0.1:8090").Get("http://device/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var times []time.Time
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			times = append(times, time.Now())
		}
	}
	if len(times) != n {
		t.Fatalf("%d events, want %d", len(times), n)
	}
	for i := 1; i < n; i++ {
		if d := times[i].Sub(times[i-1]); d < gap/2 {
			t.Errorf("event %d arrived %v after the one before; buffered?", i, d)
		}
	}
}

// TestLongPollJSONStreams: a JSON long poll (rewritten type) is passed on
// as soon as the device has sent it, not when the connection ends.
func TestLongPollJSONStreams(t *testing.T) {
	release := make(chan struct{})
	d := newDevice(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"job":"done","next":"http://`+r.Host+`/poll"}`+"\n")
		w.(http.Flusher).Flush()
		<-release // the device keeps the connection open
	}), deviceOptions{})
	defer close(release)
	resp, err := originClient(d, "http://127.0.0.1:8090").Get("http://device/poll")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if line != `{"job":"done","next":"http://127.0.0.1:8090/poll"}`+"\n" {
		t.Errorf("line %q", line)
	}
}

// originClient is d's HTTP client with every request saying it comes from
// pages served on origin (tunnel.WithClientOrigin), as a local listener's
// or the browser's do.
func originClient(d *device, origin string) *http.Client {
	return &http.Client{
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return d.pair.Client.RoundTrip(r.WithContext(tunnel.WithClientOrigin(r.Context(), origin)))
		}),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
