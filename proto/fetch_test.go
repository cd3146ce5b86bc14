package proto

import (
	"bytes"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// goldenFetchMessages freezes the wire shape of the signaling fallback, the
// agent's hello that announces it and an access entry marked with its
// path. (The relay ticket is session.ready's relayTicket.)
var goldenFetchMessages = []struct {
	name    string
	dir     string // "agent" for agent ↔ signaling messages, "" for the browser's
	typ     MsgType
	payload any
	fresh   func() any
}{
	{"fetch-request", "agent", TypeFetchRequest, &FetchRequest{ID: 3, RequestHead: RequestHead{
		Method: "POST", Target: "/cgi-bin/status?x=1", ContentLength: 11,
		Header: http.Header{"Content-Type": {"text/plain;charset=UTF-8"}, "Cookie": {"lang=en"}},
	}}, func() any { return &FetchRequest{} }},
	{"fetch-response", "agent", TypeFetchResponse, &FetchResponse{ID: 3, ResponseHead: ResponseHead{
		Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Cookies: []string{"tab=2"},
	}}, func() any { return &FetchResponse{} }},
	{"fetch-data", "agent", TypeFetchData, &FetchData{ID: 3, Data: []byte("{\"ok\":true}")}, func() any { return &FetchData{} }},
	{"fetch-end", "agent", TypeFetchEnd, &FetchEnd{ID: 3}, func() any { return &FetchEnd{} }},
	{"fetch-abort", "agent", TypeFetchAbort, &FetchAbort{ID: 3, Error: Error{Code: CodeDeviceTimeout, Message: "the device did not answer in time"}}, func() any { return &FetchAbort{} }},
	{"fetch-credit", "agent", TypeFetchCredit, &FetchCredit{ID: 3, N: 4}, func() any { return &FetchCredit{} }},
	{"hello-agent-fetch", "agent", TypeHello, &Hello{Role: RoleAgent, Software: "porthole-agent/dev", Fetch: FetchVersion}, func() any { return &Hello{} }},
	{"log-entries-via", "agent", TypeAccessLog, &AccessLog{Entries: []AccessEntry{
		{Seq: 4, Kind: AccessHTTP, Time: accessTime, Method: "GET", URL: "/favicon.ico", Port: 80, Status: 200, RespBytes: 318, DurationUS: 2100, Via: ViaSignaling},
		{Seq: 5, Kind: AccessHTTP, Time: accessTime, Method: "GET", URL: "/", Port: 80, Status: 200, RespBytes: 5120, DurationUS: 900, Stream: 1, Via: ViaWebRTC},
	}}, func() any { return &AccessLog{} }},
}

func TestGoldenFetchMessages(t *testing.T) {
	for _, tc := range goldenFetchMessages {
		t.Run(tc.name, func(t *testing.T) {
			session := "abcdefgh12345678"
			if tc.typ == TypeHello {
				session = ""
			}
			checkGolden(t, filepath.Join("testdata", "golden", tc.dir, tc.name+".json"), tc.typ, session, tc.payload, tc.fresh())
		})
	}
}

func TestFetchMessagesRefuseBadFields(t *testing.T) {
	get := RequestHead{Method: "GET", Target: "/"}
	tests := []struct {
		name string
		v    Validator
		code Code
	}{
		{"request id zero", &FetchRequest{RequestHead: get}, CodeBadMessage},
		{"request body over the limit", &FetchRequest{ID: 1, RequestHead: RequestHead{Method: "POST", Target: "/", ContentLength: MaxFetchBody + 1}}, CodeTooLarge},
		{"request absolute target", &FetchRequest{ID: 1, RequestHead: RequestHead{Method: "GET", Target: "http://10.0.0.1/"}}, CodeBadRequest},
		{"request connect", &FetchRequest{ID: 1, RequestHead: RequestHead{Method: "CONNECT", Target: "/"}}, CodeBadRequest},
		{"request header injection", &FetchRequest{ID: 1, RequestHead: RequestHead{Method: "GET", Target: "/", Header: http.Header{"X": {"a\r\nHost: evil"}}}}, CodeBadRequest},
		{"request smuggling", &FetchRequest{ID: 1, RequestHead: RequestHead{Method: "POST", Target: "/", Header: http.Header{"Content-Length": {"1"}, "Transfer-Encoding": {"chunked"}}}}, CodeBadRequest},
		{"response id zero", &FetchResponse{ResponseHead: ResponseHead{Status: 200}}, CodeBadMessage},
		{"response status", &FetchResponse{ID: 1, ResponseHead: ResponseHead{Status: 42}}, CodeBadMessage},
		{"response cookie injection", &FetchResponse{ID: 1, ResponseHead: ResponseHead{Status: 200, Cookies: []string{"a=1\r\nSet-Cookie: b=2"}}}, CodeBadMessage},
		{"empty data", &FetchData{ID: 1}, CodeBadMessage},
		{"oversize data", &FetchData{ID: 1, Data: make([]byte, FetchChunk+1)}, CodeBadMessage},
		{"data id zero", &FetchData{Data: []byte("x")}, CodeBadMessage},
		{"end id zero", &FetchEnd{}, CodeBadMessage},
		{"abort unknown code", &FetchAbort{ID: 1, Error: Error{Code: "oops"}}, CodeBadMessage},
		{"abort long message", &FetchAbort{ID: 1, Error: Error{Code: CodeCanceled, Message: strings.Repeat("m", MaxText+1)}}, CodeTooLarge},
		{"credit zero", &FetchCredit{ID: 1}, CodeBadMessage},
		{"credit over the window", &FetchCredit{ID: 1, N: FetchWindow + 1}, CodeBadMessage},
		{"client hello with fetch", &Hello{Role: RoleClient, Fetch: 1}, CodeBadMessage},
		{"negative fetch version", &Hello{Role: RoleAgent, Fetch: -1}, CodeBadMessage},
		{"unknown via", &AccessLog{Entries: []AccessEntry{{Seq: 1, Kind: AccessHTTP, Time: accessTime, Via: "pigeon"}}}, CodeBadMessage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.v.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			if CodeOf(err) != tc.code {
				t.Fatalf("code %s, want %s (%v)", CodeOf(err), tc.code, err)
			}
		})
	}
	// Header keys are canonicalised, as in the tunnel, so one spelling
	// cannot dodge a check made on another.
	r := &FetchRequest{ID: 1, RequestHead: RequestHead{Method: "GET", Target: "/", Header: http.Header{"x-thing": {"1"}}}}
	if err := r.Validate(); err != nil || r.Header.Get("X-Thing") != "1" {
		t.Fatalf("header not canonicalised: %v %v", err, r.Header)
	}
}

func TestFetchDataFitsOneSignalMessage(t *testing.T) {
	// The largest chunk, base64 in JSON, and the largest head the tunnel
	// allows must both fit in one signaling message.
	b, err := Encode(TypeFetchData, "abcdefgh12345678", &FetchData{ID: 1 << 60, Data: bytes.Repeat([]byte{0xff}, FetchChunk)})
	if err != nil {
		t.Fatalf("a full chunk does not fit: %v", err)
	}
	if len(b) > MaxSignalMessage*3/4 {
		t.Fatalf("a full chunk takes %d bytes of %d", len(b), MaxSignalMessage)
	}
	hdr := http.Header{}
	for i := range 100 {
		hdr.Set("X-H"+strings.Repeat("a", i%10)+string(rune('a'+i%26))+string(rune('a'+i/26)), strings.Repeat("v", 300))
	}
	if _, err := Encode(TypeFetchRequest, "abcdefgh12345678", &FetchRequest{ID: 1, RequestHead: RequestHead{Method: "GET", Target: "/", Header: hdr}}); err != nil {
		t.Fatalf("a 30 KiB head does not fit: %v", err)
	}
}

func TestPortholeCookieNames(t *testing.T) {
	for name, want := range map[string]bool{
		DeviceCookie:             true,
		"__host-porthole-device": true, // prefixes match case-insensitively in browsers
		"__HOST-PORTHOLE-bind":   true,
		"__Host-porthole":        false,
		"porthole-device":        false,
		"session":                false,
		"":                       false,
	} {
		if got := IsPortholeCookie(name); got != want {
			t.Errorf("IsPortholeCookie(%q) = %v, want %v", name, got, want)
		}
	}
}

func FuzzDecodeFetch(f *testing.F) {
	for _, tc := range goldenFetchMessages {
		b, _ := Encode(tc.typ, "abcdefgh12345678", tc.payload)
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"type":"fetch.data","session":"abcdefgh","data":{"id":1,"data":"!!!"}}`))
	f.Add([]byte(`{"v":1,"type":"fetch.request","session":"abcdefgh","data":{"id":1,"method":"GET","target":"/","contentLength":-2}}`))
	f.Add([]byte(`{"v":1,"type":"fetch.abort","session":"abcdefgh","data":{"id":18446744073709551615,"code":"canceled","x":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Decode(b)
		if err != nil {
			return
		}
		var v Validator
		switch env.Type {
		case TypeFetchRequest:
			v = &FetchRequest{}
		case TypeFetchResponse:
			v = &FetchResponse{}
		case TypeFetchData:
			v = &FetchData{}
		case TypeFetchEnd:
			v = &FetchEnd{}
		case TypeFetchAbort:
			v = &FetchAbort{}
		case TypeFetchCredit:
			v = &FetchCredit{}
		default:
			return
		}
		if err := DecodeData(env, v); err != nil {
			if !CodeOf(err).Known() {
				t.Fatalf("error without a known code: %v", err)
			}
			return
		}
		// The same message with a key repeated or a byte of invalid UTF-8
		// must be refused (strictjson.go).
		for _, m := range strictMutations(b) {
			if _, err := Decode(m); err == nil && len(m) <= MaxSignalMessage {
				t.Fatalf("accepted %q, a mutation of accepted %q", m, b)
			}
		}
		switch m := v.(type) {
		case *FetchRequest:
			if m.ID == 0 || m.ContentLength > MaxFetchBody || !strings.HasPrefix(m.Target, "/") || m.Method == http.MethodConnect {
				t.Fatalf("accepted a bad request head %+v", m)
			}
		case *FetchData:
			if len(m.Data) == 0 || len(m.Data) > FetchChunk {
				t.Fatalf("accepted a chunk of %d bytes", len(m.Data))
			}
		case *FetchCredit:
			if m.N < 1 || m.N > FetchWindow {
				t.Fatalf("accepted credit %d", m.N)
			}
		}
		if _, err := Encode(env.Type, env.Session, v); err != nil && CodeOf(err) != CodeTooLarge {
			t.Fatalf("re-encode: %v", err)
		}
	})
}
