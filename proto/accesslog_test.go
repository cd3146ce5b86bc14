package proto

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var accessTime = time.Date(2026, 11, 23, 18, 1, 2, 345000000, time.UTC)

// goldenAccessMessages freezes the wire shape of the access-log messages.
var goldenAccessMessages = []struct {
	name    string
	typ     MsgType
	payload any
	fresh   func() any
}{
	{"log-entries", TypeAccessLog, &AccessLog{Entries: []AccessEntry{
		{Seq: 7, Kind: AccessHTTP, Time: accessTime, Method: "GET", URL: "/supplies?tray=2", Port: 80, Status: 200, ReqBytes: 0, RespBytes: 5120, DurationUS: 12500, Stream: 3},
		{Seq: 8, Kind: AccessTCP, Time: accessTime.Add(time.Second), Port: 22, ReqBytes: 2048, RespBytes: 4096, DurationUS: 60000000, Stream: 5},
		{Seq: 9, Kind: AccessHTTP, Time: accessTime.Add(2 * time.Second), Method: "POST", URL: "/settings", Port: 80, ReqBytes: 300, DurationUS: 800, Stream: 3, Error: CodeCanceled},
	}}, func() any { return &AccessLog{} }},
	{"log-entries-change", TypeAccessLog, &AccessLog{Entries: []AccessEntry{
		{Seq: 10, Kind: AccessHTTP, Time: accessTime, Method: "POST", URL: "/settings/network", Port: 80, Status: 302, ReqBytes: 96, DurationUS: 4100, Stream: 3,
			Via: ViaWebRTC, Service: ServiceWeb, Change: true, Form: &AccessForm{Encoding: FormURLEncoded, Fields: []AccessField{
				{Name: "hostname", Value: "npi4000"}, {Name: "dns1", Value: "192.168.1.1"}, {Name: "admin_password", Redacted: true}}}},
		{Seq: 11, Kind: AccessHTTP, Time: accessTime.Add(time.Second), Method: "POST", URL: "/firmware/upload", Port: 80, Status: 403, ReqBytes: 65536, DurationUS: 900, Stream: 3,
			Via: ViaWebRTC, Service: ServiceWeb, Error: CodeForbidden, Change: true, Refused: "The site's policy refuses /firmware in this session",
			Form: &AccessForm{Encoding: FormMultipart, Truncated: true, Fields: []AccessField{{Name: "image", File: "npi4000-2.1.bin", Size: 65210}}}},
		{Seq: 12, Kind: AccessHTTP, Time: accessTime.Add(2 * time.Second), Method: "GET", URL: "/cgi-bin/reset?token=%5Bredacted%5D&now=1", Port: 80, Status: 200, RespBytes: 40, DurationUS: 700, Stream: 5,
			Via: ViaWebRTC, Service: ServiceWeb, Change: true},
		{Seq: 13, Kind: AccessTCP, Time: accessTime.Add(3 * time.Second), Port: 22, DurationUS: 100, Stream: 7, Via: ViaWebRTC, Service: ServiceSSH,
			Error: CodeForbidden, Refused: "This session is read-only: the site's policy allows viewing web pages, not terminals, screens or forwarded ports"},
	}}, func() any { return &AccessLog{} }},
	{"drain", TypeDrain, &Drain{RetryAfterMS: 250, Message: "signaling node n1 is restarting; reconnect"}, func() any { return &Drain{} }},
	{"log-ack", TypeAccessAck, &AccessAck{Seq: 9}, func() any { return &AccessAck{} }},
	{"session-path", TypeSessionPath, &SessionPath{Path: PathRelay, Local: "relay", Remote: "srflx"}, func() any { return &SessionPath{} }},
	{"session-path-tls", TypeSessionPath, &SessionPath{Path: PathRelay, Local: "relay", Remote: "host", Relay: "tls", Site: SiteTLSOnly}, func() any { return &SessionPath{} }},
}

// TestGoldenHelloPolicy freezes a device's site policy in hello.
func TestGoldenHelloPolicy(t *testing.T) {
	hello := &Hello{Role: RoleAgent, Software: "porthole-agent/dev", Devices: []Device{{ID: "printer-1", Scheme: "http", HTTPPort: 80,
		Policy: &AgentPolicy{RequireApproval: true, GrantScope: GrantScope{ReadOnly: true, Deny: []string{"/firmware"}, Ports: []int{80}}}}}}
	checkGolden(t, filepath.Join("testdata", "golden", "agent", "hello-agent-policy.json"), TypeHello, "", hello, &Hello{})
	bad := &Device{ID: "p", Policy: &AgentPolicy{GrantScope: GrantScope{Deny: []string{"firmware"}}}}
	if err := bad.Validate(); err == nil {
		t.Error("a policy with a relative path rule was accepted")
	}
}

func TestGoldenAccessMessages(t *testing.T) {
	for _, tc := range goldenAccessMessages {
		t.Run(tc.name, func(t *testing.T) {
			// Under agent/: messages between agents and signaling only, which
			// the browser's tests (reading golden/*.json) do not speak.
			checkGolden(t, filepath.Join("testdata", "golden", "agent", tc.name+".json"), tc.typ, "abcdefgh12345678", tc.payload, tc.fresh())
		})
	}
}

func TestAccessLogRefusesBadBatches(t *testing.T) {
	ok := func() AccessEntry {
		return AccessEntry{Seq: 1, Kind: AccessHTTP, Time: accessTime, Method: "GET", URL: "/", Port: 80, Status: 200}
	}
	tests := []struct {
		name string
		mod  func(l *AccessLog)
		code Code
	}{
		{"empty", func(l *AccessLog) { l.Entries = nil }, CodeBadMessage},
		{"too many", func(l *AccessLog) {
			for i := range MaxAccessBatch {
				e := ok()
				e.Seq = uint64(i + 2)
				l.Entries = append(l.Entries, e)
			}
		}, CodeBadMessage},
		{"seq zero", func(l *AccessLog) { l.Entries[0].Seq = 0 }, CodeBadMessage},
		{"gap", func(l *AccessLog) { e := ok(); e.Seq = 3; l.Entries = append(l.Entries, e) }, CodeBadMessage},
		{"reordered", func(l *AccessLog) { e := ok(); e.Seq = 2; l.Entries = append([]AccessEntry{e}, l.Entries...) }, CodeBadMessage},
		{"kind", func(l *AccessLog) { l.Entries[0].Kind = "udp" }, CodeBadMessage},
		{"no time", func(l *AccessLog) { l.Entries[0].Time = time.Time{} }, CodeBadMessage},
		{"method", func(l *AccessLog) { l.Entries[0].Method = "GET /x HTTP/1.1\r\n" }, CodeBadMessage},
		{"url", func(l *AccessLog) { l.Entries[0].URL = "/" + strings.Repeat("a", MaxTarget) }, CodeTooLarge},
		{"status", func(l *AccessLog) { l.Entries[0].Status = 1000 }, CodeBadMessage},
		{"bytes", func(l *AccessLog) { l.Entries[0].RespBytes = -1 }, CodeBadMessage},
		{"error code", func(l *AccessLog) { l.Entries[0].Error = "boom" }, CodeBadMessage},
		{"refusal", func(l *AccessLog) { l.Entries[0].Refused = strings.Repeat("x", MaxRefusal+1) }, CodeTooLarge},
		{"form encoding", func(l *AccessLog) { l.Entries[0].Form = &AccessForm{Encoding: "xml"} }, CodeBadMessage},
		{"form redacted value", func(l *AccessLog) {
			l.Entries[0].Form = &AccessForm{Encoding: FormJSON, Fields: []AccessField{{Name: "pwd", Value: "x", Redacted: true}}}
		}, CodeBadMessage},
		{"form value", func(l *AccessLog) {
			l.Entries[0].Form = &AccessForm{Encoding: FormJSON, Fields: []AccessField{{Name: "a", Value: strings.Repeat("v", MaxFieldValue+1)}}}
		}, CodeTooLarge},
		{"form fields", func(l *AccessLog) {
			l.Entries[0].Form = &AccessForm{Encoding: FormJSON, Fields: make([]AccessField, MaxFormFields+1)}
		}, CodeTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &AccessLog{Entries: []AccessEntry{ok()}}
			tc.mod(l)
			err := l.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			if CodeOf(err) != tc.code {
				t.Fatalf("code %s, want %s (%v)", CodeOf(err), tc.code, err)
			}
		})
	}
	for _, p := range []SessionPath{
		{Path: PathRelay, Relay: "sctp"},
		{Path: PathRelay, Relay: "tcp", Proxy: "10.0.0.1:3128\r\nX: y"},
		{Path: PathRelay, Relay: "tcp", Proxy: strings.Repeat("a", 256)},
		{Path: PathRelay, Site: "because"},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("bad path report accepted: %+v", p)
		}
	}
	if got := (&SessionPath{Path: PathRelay, Relay: "tls", Proxy: "10.0.0.1:3128", Site: SiteProxyOnly}).Describe(); got != "relay (TURN/TLS through proxy 10.0.0.1:3128): site allows only an HTTP proxy" {
		t.Errorf("Describe = %q", got)
	}
	if got := (&SessionPath{Path: PathRelay, Relay: "udp", Site: SiteNoDirect}).Describe(); got != "relay (TURN/UDP): no direct path through the NATs" {
		t.Errorf("Describe = %q", got)
	}
	if got := (&SessionPath{Path: PathDirect}).Describe(); got != "direct" {
		t.Errorf("Describe = %q", got)
	}
	if err := (&SessionPath{Path: "carrier-pigeon"}).Validate(); CodeOf(err) != CodeBadMessage {
		t.Fatalf("bad path accepted: %v", err)
	}
}

func FuzzDecodeAccessLog(f *testing.F) {
	for _, tc := range goldenAccessMessages {
		b, _ := Encode(tc.typ, "abcdefgh12345678", tc.payload)
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"type":"log.entries","session":"abcdefgh","data":{"entries":[{"seq":18446744073709551615,"kind":"http","time":"2026-01-01T00:00:00Z"},{"seq":0,"kind":"http","time":"2026-01-01T00:00:00Z"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Decode(b)
		if err != nil {
			return
		}
		var v any
		switch env.Type {
		case TypeAccessLog:
			v = &AccessLog{}
		case TypeAccessAck:
			v = &AccessAck{}
		case TypeSessionPath:
			v = &SessionPath{}
		default:
			return
		}
		if err := DecodeData(env, v); err != nil {
			if !CodeOf(err).Known() {
				t.Fatalf("error without a known code: %v", err)
			}
			return
		}
		if l, ok := v.(*AccessLog); ok {
			for i := 1; i < len(l.Entries); i++ {
				if l.Entries[i].Seq != l.Entries[i-1].Seq+1 {
					t.Fatal("accepted a batch with a gap")
				}
			}
		}
		if _, err := Encode(env.Type, env.Session, v); err != nil && CodeOf(err) != CodeTooLarge {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

// TestGoldenRecordingMessages freezes the wire shape of the terminal
// recording's messages.
func TestGoldenRecordingMessages(t *testing.T) {
	for _, tc := range []struct {
		name    string
		typ     MsgType
		payload any
		fresh   any
	}{
		{"rec-chunk", TypeRecording, &RecordingChunk{Seq: 1, Data: `{"version":2,"width":80,"height":24,"timestamp":1795456862}` + "\n" +
			`[0.104,"o","$ "]` + "\n" + `[1.5,"r","100x30"]` + "\n"}, &RecordingChunk{}},
		{"rec-ack", TypeRecordingAck, &RecordingAck{Seq: 1}, &RecordingAck{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGolden(t, filepath.Join("testdata", "golden", "agent", tc.name+".json"), tc.typ, "abcdefgh12345678", tc.payload, tc.fresh)
		})
	}
}

func TestRecordingChunkRefusesBadChunks(t *testing.T) {
	for name, c := range map[string]RecordingChunk{
		"seq 0":     {Seq: 0, Data: "[0,\"o\",\"x\"]\n"},
		"torn line": {Seq: 2, Data: "[0,\"o\",\"x\"]"},
		"no header": {Seq: 1, Data: "[0,\"o\",\"x\"]\n"},
		"too large": {Seq: 2, Data: strings.Repeat("x", MaxRecordingChunk) + "\n"},
		"not utf-8": {Seq: 2, Data: "\xff\n"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
