package realews

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestCockpitIsAWebSocketApp checks that the real Cockpit serves its pages,
// runs a command over its WebSocket with its own Origin, and refuses the
// socket to a foreign Origin (so a test through Porthole that gets a
// socket proves the agent presented the device's origin).
func TestCockpitIsAWebSocketApp(t *testing.T) {
	c := StartCockpit(t)
	base := fmt.Sprintf("127.0.0.1:%d", c.Port)
	resp, err := http.Get("http://" + base + "/cockpit/@localhost/system/index.html")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("system page: %d", resp.StatusCode)
	}
	d := websocket.Dialer{Subprotocols: []string{"cockpit1"}, HandshakeTimeout: 5 * time.Second}
	if _, resp, err := d.Dial("ws://"+base+"/cockpit/socket", http.Header{"Origin": {"http://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign Origin: %v %+v", err, resp)
	}
	ws, _, err := d.Dial("ws://"+base+"/cockpit/socket", http.Header{"Origin": {"http://" + base}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	out := CockpitRun(t, ws, "echo porthole")
	if out != "porthole\n" {
		t.Fatalf("command output %q", out)
	}
}
