package proto

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseFrameRules(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, MaxChunk+1)
	tests := []struct {
		name string
		msg  []byte
		ok   bool
	}{
		{"empty", nil, false},
		{"unknown type", []byte{0x7f}, false},
		{"data", AppendFrame(nil, FrameData, []byte("abc")), true},
		{"empty data", AppendFrame(nil, FrameData, nil), false},
		{"oversize data", AppendFrame(nil, FrameData, big), false},
		{"max data", AppendFrame(nil, FrameData, big[:MaxChunk]), true},
		{"end", AppendFrame(nil, FrameEnd, nil), true},
		{"end with payload", AppendFrame(nil, FrameEnd, []byte("x")), false},
		{"tcp opened", AppendFrame(nil, FrameTCPOpened, nil), true},
		{"request without head", AppendFrame(nil, FrameRequest, nil), false},
		{"abort", AppendFrame(nil, FrameAbort, []byte(`{"code":"canceled"}`)), true},
		{"oversize frame", AppendFrame(nil, FrameRequest, bytes.Repeat([]byte{'x'}, MaxFrame)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFrame(tc.msg)
			if (err == nil) != tc.ok {
				t.Fatalf("ok=%v, want %v (%v)", err == nil, tc.ok, err)
			}
			if err == nil && (f.Type != FrameType(tc.msg[0]) || !bytes.Equal(f.Payload, tc.msg[1:])) {
				t.Fatalf("frame %v does not match input", f)
			}
		})
	}
}

func TestDecodeRequestHeadRefusesSmuggling(t *testing.T) {
	tests := []struct {
		name string
		head string
		code Code // "" means accepted
	}{
		{"simple get", `{"method":"GET","target":"/","contentLength":0}`, ""},
		{"query", `{"method":"POST","target":"/settings?a=1&b=%20","header":{"content-type":["application/x-www-form-urlencoded"]},"contentLength":12}`, ""},
		{"connect", `{"method":"CONNECT","target":"/","contentLength":0}`, CodeBadRequest},
		{"bad method", `{"method":"GE T","target":"/","contentLength":0}`, CodeBadRequest},
		{"absolute form", `{"method":"GET","target":"http://10.0.0.1/","contentLength":0}`, CodeBadRequest},
		{"scheme relative", `{"method":"GET","target":"//evil/","contentLength":0}`, CodeBadRequest},
		{"asterisk", `{"method":"OPTIONS","target":"*","contentLength":0}`, CodeBadRequest},
		{"space in target", `{"method":"GET","target":"/a b","contentLength":0}`, CodeBadRequest},
		{"crlf in target", `{"method":"GET","target":"/a\r\nHost: x","contentLength":0}`, CodeBadRequest},
		{"header injection", `{"method":"GET","target":"/","header":{"X-A":["1\r\nX-B: 2"]},"contentLength":0}`, CodeBadRequest},
		{"bad header name", `{"method":"GET","target":"/","header":{"X A":["1"]},"contentLength":0}`, CodeBadRequest},
		{"duplicate content-length", `{"method":"POST","target":"/","header":{"Content-Length":["1","2"]},"contentLength":1}`, CodeBadRequest},
		// Refused before the header rules see it: one JSON object repeats a
		// key as encoding/json compares keys (CheckJSON).
		{"duplicate content-length by case", `{"method":"POST","target":"/","header":{"Content-Length":["1"],"content-length":["2"]},"contentLength":1}`, CodeBadMessage},
		{"te and cl", `{"method":"POST","target":"/","header":{"Transfer-Encoding":["chunked"],"content-length":["5"]},"contentLength":5}`, CodeBadRequest},
		{"negative length", `{"method":"POST","target":"/","contentLength":-2}`, CodeBadRequest},
		{"bad port", `{"method":"GET","target":"/","contentLength":0,"port":70000}`, CodeBadRequest},
		{"unknown field", `{"method":"GET","target":"/","contentLength":0,"host":"10.0.0.1"}`, CodeBadMessage},
		{"not json", `GET / HTTP/1.1`, CodeBadMessage},
		{"too many headers", `{"method":"GET","target":"/","contentLength":0,"header":{"X":[` + strings.TrimSuffix(strings.Repeat(`"v",`, MaxHeaders+1), ",") + `]}}`, CodeTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := DecodeRequestHead([]byte(tc.head))
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				for k := range h.Header {
					if k != http.CanonicalHeaderKey(k) {
						t.Fatalf("header key %q not canonical", k)
					}
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if got := CodeOf(err); got != tc.code {
				t.Fatalf("code %s, want %s (%v)", got, tc.code, err)
			}
		})
	}
}

func TestDecodeResponseHead(t *testing.T) {
	tests := []struct {
		head string
		ok   bool
	}{
		{`{"status":200,"header":{"Content-Type":["text/html"]}}`, true},
		{`{"status":200,"cookies":["ui_lang=en"]}`, true},
		{`{"status":42}`, false},
		{`{"status":200,"header":{"X":["a\nb"]}}`, false},
		{`{"status":200,"cookies":["a=b\r\nSet-Cookie: c=d"]}`, false},
	}
	for _, tc := range tests {
		_, err := DecodeResponseHead([]byte(tc.head))
		if (err == nil) != tc.ok {
			t.Errorf("%s: ok=%v, want %v (%v)", tc.head, err == nil, tc.ok, err)
		}
	}
}

func TestDecodeAbortNeverFails(t *testing.T) {
	tests := []struct {
		in   string
		code Code
	}{
		{`{"code":"port_not_allowed","message":"port 23 is not declared"}`, CodePortNotAllowed},
		{`{"code":"whatever"}`, CodeInternal},
		{`garbage`, CodeBadMessage},
	}
	for _, tc := range tests {
		if got := DecodeAbort([]byte(tc.in)).Code; got != tc.code {
			t.Errorf("%s: code %s, want %s", tc.in, got, tc.code)
		}
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add(AppendFrame(nil, FrameData, []byte("abc")))
	f.Add(AppendFrame(nil, FrameRequest, []byte(`{"method":"GET","target":"/","contentLength":0}`)))
	f.Add(AppendFrame(nil, FrameResponse, []byte(`{"status":200}`)))
	f.Add(AppendFrame(nil, FrameTCPOpen, []byte(`{"port":22}`)))
	f.Add(AppendFrame(nil, FrameAbort, []byte(`{"code":"canceled"}`)))
	f.Add([]byte{byte(FrameEnd)})
	f.Add(AppendFrame(nil, FrameRequest, []byte(`{"method":"GET","target":"/","target":"/x","contentLength":0}`)))
	f.Fuzz(func(t *testing.T, msg []byte) {
		fr, err := ParseFrame(msg)
		if err != nil {
			if !CodeOf(err).Known() {
				t.Fatalf("error without known code: %v", err)
			}
			return
		}
		switch fr.Type {
		case FrameRequest:
			if h, err := DecodeRequestHead(fr.Payload); err == nil {
				if !utf8.Valid(fr.Payload) {
					t.Fatalf("accepted a head that is not UTF-8: %q", fr.Payload)
				}
				for _, m := range strictMutations(fr.Payload) {
					if _, err := DecodeRequestHead(m); err == nil {
						t.Fatalf("accepted %q, a mutation of accepted %q", m, fr.Payload)
					}
				}
				if !strings.HasPrefix(h.Target, "/") || h.Method == http.MethodConnect {
					t.Fatalf("accepted dangerous head %+v", h)
				}
				b, err := EncodeHead(h)
				if err != nil {
					t.Fatalf("re-encode: %v", err)
				}
				if _, err := DecodeRequestHead(b); err != nil {
					t.Fatalf("re-decode of accepted head failed: %v", err)
				}
			}
		case FrameResponse:
			_, _ = DecodeResponseHead(fr.Payload)
		case FrameTCPOpen:
			if o, err := DecodeTCPOpen(fr.Payload); err == nil && (o.Port < 1 || o.Port > 65535) {
				t.Fatalf("accepted port %d", o.Port)
			}
		case FrameAbort:
			if e := DecodeAbort(fr.Payload); !e.Code.Known() {
				t.Fatalf("abort with unknown code %q", e.Code)
			}
		}
	})
}
