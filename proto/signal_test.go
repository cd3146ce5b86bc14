package proto

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite golden files")

func ptr[T any](v T) *T { return &v }

// goldenMessages freezes the wire shape of every signaling message. The web
// client's tests read the same files.
var goldenMessages = []struct {
	name    string
	typ     MsgType
	session string
	payload any
}{
	{"hello-agent", TypeHello, "", &Hello{Role: RoleAgent, Software: "porthole-agent/dev", Devices: []Device{{ID: "printer-1", Name: "Front desk printer", Ports: []int{80, 22}, HTTPPort: 80, Scheme: "http",
		Services: []Service{{Kind: ServiceWeb, Port: 80, Scheme: "http"}, {Kind: ServiceSSH, Port: 22}}},
		{ID: "hmi-1", Ports: []int{5900, 502}, Services: []Service{{Kind: ServiceVNC, Port: 5900}, {Kind: ServiceTCP, Port: 502, Name: "Modbus/TCP"}}}}}},
	{"hello-client", TypeHello, "", &Hello{Role: RoleClient, Software: "porthole/dev"}},
	{"welcome", TypeWelcome, "", &Welcome{ID: "tech", Node: "node-a", Devices: []Device{{ID: "printer-1", Name: "Front desk printer", Ports: []int{80}, HTTPPort: 80}}}},
	{"session-open-agent", TypeSessionOpen, "abcdefgh12345678", &SessionOpen{Device: "printer-1", User: "tech", Expires: time.Date(2026, 11, 23, 18, 30, 0, 0, time.UTC), ICEServers: []ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}, {URLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Username: "1795458600:abcdefgh12345678", Credential: "c2VjcmV0"}}}},
	{"session-ready", TypeSessionReady, "abcdefgh12345678", &SessionReady{Device: "printer-1", DeviceName: "Demo printer", SiteName: "Acme GmbH", Expires: time.Date(2026, 11, 23, 18, 30, 0, 0, time.UTC), ICEServers: []ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}}, RelayTicket: "q3N9xYl0dG2cV4bW8eR1tA"}},
	{"session-end", TypeSessionEnd, "abcdefgh12345678", &SessionEnd{Reason: EndExpired, Message: "the 30-minute limit was reached"}},
	{"offer", TypeOffer, "abcdefgh12345678", &SessionDescription{Type: "offer", SDP: "v=0\r\n"}},
	{"answer", TypeAnswer, "abcdefgh12345678", &SessionDescription{Type: "answer", SDP: "v=0\r\n"}},
	{"candidate", TypeCandidate, "abcdefgh12345678", &Candidate{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", SDPMid: ptr("0"), SDPMLineIndex: ptr[uint16](0)}},
	{"candidate-end", TypeCandidate, "abcdefgh12345678", &Candidate{}},
	{"error", TypeError, "abcdefgh12345678", &Error{Code: CodeAgentOffline, Message: "the agent for printer-1 is not connected"}},
	// Signaling passes the agent's path report on to the technician.
	{"session-path-proxy", TypeSessionPath, "abcdefgh12345678", &SessionPath{Path: PathRelay, Local: "relay", Remote: "prflx", Relay: "tls", Proxy: "192.168.1.1:3128", Site: SiteProxyOnly}},
}

func TestGoldenSignalMessages(t *testing.T) {
	for _, tc := range goldenMessages {
		t.Run(tc.name, func(t *testing.T) {
			checkGolden(t, filepath.Join("testdata", "golden", tc.name+".json"), tc.typ, tc.session, tc.payload, newPayload(tc.typ))
		})
	}
}

// checkGolden encodes payload as a typ message, compares it with the golden
// file at path (rewritten with -update), decodes the golden file back into
// fresh and checks the round trip re-encodes to the same payload.
func checkGolden(t *testing.T, path string, typ MsgType, session string, payload, fresh any) {
	t.Helper()
	b, err := Encode(typ, session, payload)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if got := string(b) + "\n"; got != string(want) {
		t.Fatalf("wire shape changed:\n got %s\nwant %s", got, want)
	}
	env, err := Decode(want)
	if err != nil {
		t.Fatalf("golden does not decode: %v", err)
	}
	if env.Type != typ || env.Session != session {
		t.Fatalf("decoded %s/%s, want %s/%s", env.Type, env.Session, typ, session)
	}
	if err := DecodeData(env, fresh); err != nil {
		t.Fatalf("payload does not decode: %v", err)
	}
	a, _ := json.Marshal(fresh)
	c, _ := json.Marshal(payload)
	if string(a) != string(c) {
		t.Fatalf("payload round trip:\n got %s\nwant %s", a, c)
	}
}

func newPayload(t MsgType) any {
	switch t {
	case TypeHello:
		return &Hello{}
	case TypeWelcome:
		return &Welcome{}
	case TypeSessionOpen:
		return &SessionOpen{}
	case TypeSessionReady:
		return &SessionReady{}
	case TypeSessionEnd:
		return &SessionEnd{}
	case TypeOffer, TypeAnswer:
		return &SessionDescription{}
	case TypeCandidate:
		return &Candidate{}
	case TypeError:
		return &Error{}
	case TypeSessionPath:
		return &SessionPath{}
	}
	return &map[string]any{}
}

func TestDecodeRefusesBadMessages(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
	tests := []struct {
		name string
		msg  string
		code Code
	}{
		{"empty", ``, CodeBadMessage},
		{"not json", `hello`, CodeBadMessage},
		{"array", `[1,2]`, CodeBadMessage},
		{"trailing", `{"v":1,"type":"hello"} {}`, CodeBadMessage},
		{"wrong version", `{"v":2,"type":"hello"}`, CodeUnsupported},
		{"no version", `{"type":"hello"}`, CodeUnsupported},
		{"unknown type", `{"v":1,"type":"launch.missiles"}`, CodeUnsupported},
		{"deep nesting", `{"v":1,"type":"hello","data":` + deep + `}`, CodeBadMessage},
		{"oversize", `{"v":1,"type":"hello","data":"` + strings.Repeat("x", MaxSignalMessage) + `"}`, CodeTooLarge},
		{"bad session id", `{"v":1,"type":"offer","session":"../../etc"}`, CodeBadMessage},
		{"offer without session", `{"v":1,"type":"offer","data":{"type":"offer","sdp":"v=0"}}`, CodeBadMessage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.msg))
			if err == nil {
				t.Fatal("accepted")
			}
			if got := CodeOf(err); got != tc.code {
				t.Fatalf("code %s, want %s (%v)", got, tc.code, err)
			}
		})
	}
}

func TestDecodeDataRefusesBadPayloads(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		into any
		code Code
	}{
		{"unknown field", `{"v":1,"type":"hello","data":{"role":"agent","x":1}}`, &Hello{}, CodeBadMessage},
		{"unknown role", `{"v":1,"type":"hello","data":{"role":"root"}}`, &Hello{}, CodeBadMessage},
		{"client with devices", `{"v":1,"type":"hello","data":{"role":"client","devices":[{"id":"a"}]}}`, &Hello{}, CodeBadMessage},
		{"duplicate device", `{"v":1,"type":"hello","data":{"role":"agent","devices":[{"id":"a"},{"id":"a"}]}}`, &Hello{}, CodeBadMessage},
		{"bad port", `{"v":1,"type":"hello","data":{"role":"agent","devices":[{"id":"a","ports":[70000]}]}}`, &Hello{}, CodeBadMessage},
		{"unknown service", `{"v":1,"type":"hello","data":{"role":"agent","devices":[{"id":"a","ports":[22],"services":[{"kind":"telnet","port":22}]}]}}`, &Hello{}, CodeBadMessage},
		{"service port out of range", `{"v":1,"type":"hello","data":{"role":"agent","devices":[{"id":"a","ports":[22],"services":[{"kind":"ssh","port":0}]}]}}`, &Hello{}, CodeBadMessage},
		{"service port undeclared", `{"v":1,"type":"hello","data":{"role":"agent","devices":[{"id":"a","ports":[22],"services":[{"kind":"ssh","port":23}]}]}}`, &Hello{}, CodeBadMessage},
		{"two web services", `{"v":1,"type":"hello","data":{"role":"agent","devices":[{"id":"a","ports":[80,81],"services":[{"kind":"web","port":80},{"kind":"web","port":81}]}]}}`, &Hello{}, CodeBadMessage},
		{"ssh with a scheme", `{"v":1,"type":"hello","data":{"role":"agent","devices":[{"id":"a","ports":[22],"services":[{"kind":"ssh","port":22,"scheme":"https"}]}]}}`, &Hello{}, CodeBadMessage},
		{"bad web scheme", `{"v":1,"type":"hello","data":{"role":"agent","devices":[{"id":"a","ports":[80],"services":[{"kind":"web","port":80,"scheme":"gopher"}]}]}}`, &Hello{}, CodeBadMessage},
		{"bad device id", `{"v":1,"type":"session.open","data":{"device":"a b"}}`, &SessionOpen{}, CodeBadMessage},
		{"no data", `{"v":1,"type":"session.open"}`, &SessionOpen{}, CodeBadMessage},
		{"bad ice url", `{"v":1,"type":"session.open","data":{"device":"a","iceServers":[{"urls":["http://x"]}]}}`, &SessionOpen{}, CodeBadMessage},
		{"sdp type", `{"v":1,"type":"offer","session":"abcdefgh","data":{"type":"rollback","sdp":"v=0"}}`, &SessionDescription{}, CodeBadMessage},
		{"empty sdp", `{"v":1,"type":"offer","session":"abcdefgh","data":{"type":"offer","sdp":""}}`, &SessionDescription{}, CodeBadMessage},
		{"long candidate", `{"v":1,"type":"candidate","session":"abcdefgh","data":{"candidate":"` + strings.Repeat("c", MaxCandidate+1) + `"}}`, &Candidate{}, CodeTooLarge},
		{"end reason", `{"v":1,"type":"session.end","session":"abcdefgh","data":{"reason":"because"}}`, &SessionEnd{}, CodeBadMessage},
		{"error code", `{"v":1,"type":"error","data":{"code":"lol"}}`, &Error{}, CodeBadMessage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, err := Decode([]byte(tc.msg))
			if err != nil {
				t.Fatalf("envelope refused: %v", err)
			}
			err = DecodeData(env, tc.into)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := CodeOf(err); got != tc.code {
				t.Fatalf("code %s, want %s (%v)", got, tc.code, err)
			}
		})
	}
}

func TestErrorIsMatchesCode(t *testing.T) {
	err := Errorf(CodeTooLarge, "frame of %d bytes", 99)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatal("errors.Is does not match on code")
	}
	if errors.Is(err, ErrBadMessage) {
		t.Fatal("errors.Is matched another code")
	}
	wrapped := errors.Join(errors.New("context"), err)
	if CodeOf(wrapped) != CodeTooLarge {
		t.Fatal("CodeOf does not see through wrapping")
	}
	if CodeOf(errors.New("plain")) != CodeInternal {
		t.Fatal("uncoded error should be internal")
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range goldenMessages {
		b, _ := Encode(tc.typ, tc.session, tc.payload)
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"type":"hello","data":` + strings.Repeat("[", 100) + `}`))
	f.Add([]byte(`{"v":1,"type":"hello","data":"\"{{{{"}`))
	f.Add([]byte(`{"v":1,"type":"hello","type":"hello","data":{"role":"agent"}}`))
	f.Add([]byte("{\"v\":1,\"type\":\"hello\",\"data\":{\"role\":\"agent\",\"software\":\"\xff\"}}"))
	f.Add([]byte(`{"v":1,"type":"hello","data":{"role":"agent","software":"\ud800"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Decode(b)
		if err != nil {
			if !CodeOf(err).Known() {
				t.Fatalf("error without a known code: %v", err)
			}
			return
		}
		if len(b) > MaxSignalMessage {
			t.Fatal("accepted an oversize message")
		}
		if !utf8.Valid(b) {
			t.Fatalf("accepted invalid UTF-8 %q", b)
		}
		// The same message with a key repeated or a byte of invalid UTF-8
		// must be refused.
		for _, m := range strictMutations(b) {
			if _, err := Decode(m); err == nil && len(m) <= MaxSignalMessage {
				t.Fatalf("accepted %q, a mutation of accepted %q", m, b)
			}
		}
		p := newPayload(env.Type)
		if err := DecodeData(env, p); err == nil {
			// Whatever decodes must encode again within limits.
			if _, err := Encode(env.Type, env.Session, p); err != nil && CodeOf(err) != CodeTooLarge {
				t.Fatalf("re-encode: %v", err)
			}
		} else if !CodeOf(err).Known() {
			t.Fatalf("payload error without a known code: %v", err)
		}
	})
}
