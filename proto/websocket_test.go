package proto

import (
	"bytes"
	"strings"
	"testing"
)

func TestValidOrigin(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"https://abc.sessions.example", true},
		{"http://127.0.0.1:8090", true},
		{"http://[::1]:8090", true},
		{"http://[::1]", true},
		{"https://abc.sessions.localhost:8443", true},
		{"ftp://x", false},
		{"https://", false},
		{"https://a/", false},
		{"https://a:", false},
		{"https://a:123456", false},
		{"https://user@a", false},
		{"https://a?x", false},
		{"https://a#x", false},
		{"https://a b", false},
		{"https://[::1", false},
		{"https://[::1]x", false},
		{"https://[zz]", false},
		{"HTTPS://a", false},
		{"https://a\r\nX: y", false},
		{"https://" + strings.Repeat("a", 300), false},
	}
	for _, tc := range tests {
		if got := ValidOrigin(tc.in); got != tc.ok {
			t.Errorf("ValidOrigin(%q) = %v, want %v", tc.in, got, tc.ok)
		}
	}
}

func TestRequestHeadOriginChecked(t *testing.T) {
	for _, tc := range []struct {
		head string
		ok   bool
	}{
		{`{"method":"GET","target":"/","contentLength":0,"clientOrigin":"https://s.example"}`, true},
		{`{"method":"GET","target":"/","contentLength":0,"clientOrigin":"javascript:alert(1)"}`, false},
		{`{"method":"GET","target":"/","contentLength":0,"clientOrigin":"https://s.example/path"}`, false},
	} {
		_, err := DecodeRequestHead([]byte(tc.head))
		if (err == nil) != tc.ok {
			t.Errorf("%s: ok=%v, want %v (%v)", tc.head, err == nil, tc.ok, err)
		}
	}
}

func TestResponseHeadDeletedCookiesAndTLS(t *testing.T) {
	for _, tc := range []struct {
		head string
		ok   bool
	}{
		{`{"status":200,"deletedCookies":["sid","ui_lang"]}`, true},
		{`{"status":200,"deletedCookies":["a=b"]}`, false},
		{`{"status":200,"deletedCookies":[""]}`, false},
		{`{"status":200,"tls":{"version":"TLS 1.0","cipher":"TLS_RSA_WITH_AES_128_CBC_SHA","needs":["TLS 1.0"],"note":"x"}}`, true},
		{`{"status":200,"tls":{"version":"TLS 1.0\n","cipher":"x","note":"x"}}`, false},
		{`{"status":200,"tls":{"version":"x","cipher":"x","note":"x","extra":1}}`, false},
	} {
		_, err := DecodeResponseHead([]byte(tc.head))
		if (err == nil) != tc.ok {
			t.Errorf("%s: ok=%v, want %v (%v)", tc.head, err == nil, tc.ok, err)
		}
	}
}

func TestDecodeWSOpen(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{`{"target":"/ws","protocols":["chat","tty"],"port":8080}`, true},
		{`{"target":"/ws?x=1","header":{"Cookie":["a=b"]}}`, true},
		{`{"target":"ws://evil.example/ws"}`, false},
		{`{"target":"//evil.example/ws"}`, false},
		{`{"target":"/ws","port":70000}`, false},
		{`{"target":"/ws","protocols":["a b"]}`, false},
		{`{"target":"/ws","protocols":["a","a"]}`, false},
		{`{"target":"/ws","protocols":[""]}`, false},
		{`{"target":"/ws","header":{"X":["a\r\nb"]}}`, false},
		{`{"target":"/ws","host":"evil"}`, false},
	}
	for _, tc := range tests {
		_, err := DecodeWSOpen([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%s: ok=%v, want %v (%v)", tc.in, err == nil, tc.ok, err)
		}
	}
}

func TestDecodeWSClose(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		code int
	}{
		{``, true, 0},
		{`{"code":1000,"reason":"bye"}`, true, 1000},
		{`{"code":4001}`, true, 4001},
		{`{"code":1006}`, false, 0},
		{`{"code":1005}`, false, 0},
		{`{"code":999}`, false, 0},
		{`{"code":5000}`, false, 0},
		{`{"reason":"no code"}`, false, 0},
		{`{"code":1000,"reason":"` + strings.Repeat("x", 124) + `"}`, false, 0},
		// Invalid UTF-8 is refused, as by every wire decoder (a peer must
		// not see a reason other than the one sent).
		{"{\"code\":1000,\"reason\":\"\xff\"}", false, 0},
	}
	for _, tc := range tests {
		c, err := DecodeWSClose([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%s: ok=%v, want %v (%v)", tc.in, err == nil, tc.ok, err)
			continue
		}
		if err == nil && c.Code != tc.code {
			t.Errorf("%s: code %d, want %d", tc.in, c.Code, tc.code)
		}
	}
}

func TestWSMessageFrames(t *testing.T) {
	big := bytes.Repeat([]byte("x"), MaxChunk)
	f, err := ParseFrame(AppendFrame(nil, FrameWSMessage, AppendWSMessage(nil, true, true, big)))
	if err != nil {
		t.Fatalf("full chunk refused: %v", err)
	}
	c, err := ParseWSMessage(f.Payload)
	if err != nil || !c.Binary || !c.Final || len(c.Data) != MaxChunk {
		t.Fatalf("chunk = %+v, %v", c, err)
	}
	if _, err := ParseFrame(AppendFrame(nil, FrameWSMessage, AppendWSMessage(nil, true, true, append(big, 'y')))); err == nil {
		t.Fatal("chunk over MaxChunk accepted")
	}
	if _, err := ParseWSMessage([]byte{0x80}); err == nil {
		t.Fatal("unknown flag accepted")
	}
	// An empty message is one final frame with no data.
	f, err = ParseFrame(AppendFrame(nil, FrameWSMessage, AppendWSMessage(nil, false, true, nil)))
	if err != nil {
		t.Fatalf("empty message refused: %v", err)
	}
	if c, _ := ParseWSMessage(f.Payload); c.Binary || !c.Final || len(c.Data) != 0 {
		t.Fatalf("empty message = %+v", c)
	}
}

func TestWSAssemblerBounds(t *testing.T) {
	a := WSAssembler{Limit: 10}
	if first, err := a.Add(WSChunk{Data: []byte("12345")}); err != nil || !first {
		t.Fatalf("first chunk: %v %v", first, err)
	}
	if _, err := a.Add(WSChunk{Binary: true, Data: []byte("x")}); CodeOf(err) != CodeBadMessage {
		t.Fatalf("type change mid-message: %v", err)
	}
	a = WSAssembler{Limit: 10}
	_, _ = a.Add(WSChunk{Data: []byte("12345")})
	if first, err := a.Add(WSChunk{Data: []byte("12345"), Final: true}); err != nil || first {
		t.Fatalf("second chunk: %v %v", first, err)
	}
	if a.InMessage() {
		t.Fatal("message not complete after final chunk")
	}
	if _, err := a.Add(WSChunk{Data: []byte("12345678901")}); CodeOf(err) != CodeTooLarge {
		t.Fatalf("over limit: %v", err)
	}
}

func TestWSForwardHeaderDropsHandshake(t *testing.T) {
	h := map[string][]string{"Cookie": {"a=b"}, "Origin": {"https://evil"}, "Host": {"evil"},
		"Sec-Websocket-Key": {"x"}, "Sec-Fetch-Site": {"cross-site"}, "User-Agent": {"ua"}, "Upgrade": {"h2c"}}
	out := WSForwardHeader(h)
	for _, k := range []string{"Origin", "Host", "Sec-Websocket-Key", "Sec-Fetch-Site", "Upgrade"} {
		if out.Get(k) != "" {
			t.Errorf("%s forwarded", k)
		}
	}
	if out.Get("Cookie") != "a=b" || out.Get("User-Agent") != "ua" {
		t.Errorf("kept fields lost: %v", out)
	}
}

func FuzzDecodeWS(f *testing.F) {
	f.Add(byte(FrameWSOpen), []byte(`{"target":"/ws","protocols":["chat"],"port":80}`))
	f.Add(byte(FrameWSOpened), []byte(`{"protocol":"chat","cookies":["a=b"],"deletedCookies":["c"]}`))
	f.Add(byte(FrameWSClose), []byte(`{"code":1000,"reason":"bye"}`))
	f.Add(byte(FrameWSMessage), []byte{WSFinal, 'h', 'i'})
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		fr, err := ParseFrame(AppendFrame(nil, FrameType(typ), payload))
		if err != nil {
			return
		}
		switch fr.Type {
		case FrameWSOpen:
			if o, err := DecodeWSOpen(fr.Payload); err == nil {
				if !strings.HasPrefix(o.Target, "/") || strings.HasPrefix(o.Target, "//") || o.Port < 0 || o.Port > 65535 {
					t.Fatalf("accepted dangerous open %+v", o)
				}
				b, err := EncodeHead(o)
				if err != nil {
					t.Fatalf("re-encode: %v", err)
				}
				if _, err := DecodeWSOpen(b); err != nil {
					t.Fatalf("re-decode of accepted open failed: %v", err)
				}
			}
		case FrameWSOpened:
			_, _ = DecodeWSOpened(fr.Payload)
		case FrameWSClose:
			if c, err := DecodeWSClose(fr.Payload); err == nil && c.Code != 0 && !ValidWSCloseCode(c.Code) {
				t.Fatalf("accepted close code %d", c.Code)
			}
		case FrameWSMessage:
			c, err := ParseWSMessage(fr.Payload)
			if err == nil {
				var a WSAssembler
				if _, err := a.Add(c); err != nil && CodeOf(err) != CodeTooLarge {
					t.Fatalf("single chunk refused: %v", err)
				}
				if len(c.Data) > MaxChunk {
					t.Fatalf("chunk of %d bytes", len(c.Data))
				}
			}
		}
	})
}

func FuzzValidOrigin(f *testing.F) {
	f.Add("https://abc.example:8443")
	f.Add("http://[::1]:1")
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidOrigin(s) {
			return
		}
		if strings.ContainsAny(s, "/?#@ \r\n\t\\") && strings.Count(s, "/") != 2 {
			t.Fatalf("accepted %q", s)
		}
		if strings.ContainsAny(s[strings.Index(s, "//")+2:], "/?#@ \r\n\t\\") {
			t.Fatalf("accepted %q with path or user info", s)
		}
	})
}
