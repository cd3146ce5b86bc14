package proto

import (
	"bytes"
	"crypto/ed25519"
	"testing"
)

// TestDecodersRefuseInvalidUTF8AndDuplicateKeys: every wire decoder of the
// package refuses what encoding/json alone would quietly accept.
func TestDecodersRefuseInvalidUTF8AndDuplicateKeys(t *testing.T) {
	const sess = "abcdefgh12345678"
	envelopes := []struct {
		name string
		in   string
	}{
		{"invalid UTF-8 in a string", "{\"v\":1,\"type\":\"candidate\",\"session\":\"" + sess + "\",\"data\":{\"candidate\":\"a\xffb\"}}"},
		{"invalid UTF-8 outside strings", "{\"v\":1,\"type\":\"hello\",\xc3\"data\":{\"role\":\"agent\"}}"},
		{"overlong UTF-8", "{\"v\":1,\"type\":\"hello\",\"data\":{\"role\":\"agent\",\"software\":\"\xc0\xaf\"}}"},
		{"lone high surrogate escape", `{"v":1,"type":"hello","data":{"role":"agent","software":"x\ud800y"}}`},
		{"lone low surrogate escape", `{"v":1,"type":"hello","data":{"role":"agent","software":"\udc00"}}`},
		{"duplicate envelope key", `{"v":1,"type":"hello","type":"offer","data":{"role":"agent"}}`},
		{"duplicate key by case", `{"v":1,"type":"hello","Type":"offer","data":{"role":"agent"}}`},
		{"duplicate key by the long s", `{"v":1,"type":"offer","session":"` + sess + `","ſession":"zzzzzzzz","data":{"type":"offer","sdp":"v=0"}}`},
		{"duplicate payload key", `{"v":1,"type":"hello","data":{"role":"agent","role":"client"}}`},
		{"duplicate payload key", `{"v":1,"type":"offer","session":"` + sess + `","data":{"type":"offer","sdp":"v=0","sdp":"v=1"}}`},
		{"duplicate session", `{"v":1,"type":"offer","session":"` + sess + `","session":"zzzzzzzz","data":{"type":"offer","sdp":"v=0"}}`},
		{"duplicate fetch id", `{"v":1,"type":"fetch.data","session":"` + sess + `","data":{"id":1,"id":2,"data":"eg=="}}`},
		{"duplicate fetch target", `{"v":1,"type":"fetch.request","session":"` + sess + `","data":{"id":1,"method":"GET","target":"/","Target":"/admin","contentLength":0}}`},
		{"duplicate fetch header", `{"v":1,"type":"fetch.response","session":"` + sess + `","data":{"id":1,"status":200,"header":{"Location":["/a"],"Location":["/b"]}}}`},
		{"invalid UTF-8 in a fetch head", "{\"v\":1,\"type\":\"fetch.request\",\"session\":\"" + sess + "\",\"data\":{\"id\":1,\"method\":\"GET\",\"target\":\"/\xff\",\"contentLength\":0}}"},
	}
	for _, tc := range envelopes {
		t.Run(tc.name, func(t *testing.T) {
			env, err := Decode([]byte(tc.in))
			if err == nil {
				err = DecodeData(env, newPayload(env.Type))
			}
			if CodeOf(err) != CodeBadMessage {
				t.Fatalf("decoded %q: %v, want bad_message", tc.in, err)
			}
		})
	}
	// A valid surrogate pair and non-ASCII text pass.
	if _, err := Decode([]byte(`{"v":1,"type":"hello","data":{"role":"agent","software":"\ud83d\ude00 café"}}`)); err != nil {
		t.Fatalf("valid pair refused: %v", err)
	}
	heads := []string{
		"{\"method\":\"GET\",\"target\":\"/\xff\",\"contentLength\":0}",
		`{"method":"GET","target":"/","target":"/admin","contentLength":0}`,
		`{"method":"GET","target":"/","Method":"POST","contentLength":0}`,
		`{"method":"GET","target":"/","header":{"X-A":["1"],"X-A":["2"]},"contentLength":0}`,
		`{"method":"GET","target":"/","header":{"content-length":["1"],"Content-Length":["2"]},"contentLength":0}`,
		`{"method":"GET","target":"/","ſtatus":"x","contentLength":0}`,
		`{"method":"GET","target":"/x\ud800","contentLength":0}`,
		`{"method":"GET","target":"/","contentLength":0} {"method":"POST"}`,
		`{"method":"GET","target":"/","contentLength":0,"extra":1}`,
	}
	for _, h := range heads {
		if _, err := DecodeRequestHead([]byte(h)); CodeOf(err) != CodeBadMessage {
			t.Errorf("request head %q: %v, want bad_message", h, err)
		}
	}
	if _, err := DecodeResponseHead([]byte(`{"status":200,"status":302}`)); CodeOf(err) != CodeBadMessage {
		t.Errorf("response head with two statuses: %v", err)
	}
	if _, err := DecodeTCPOpen([]byte(`{"port":22,"port":80}`)); CodeOf(err) != CodeBadMessage {
		t.Errorf("tcp open with two ports: %v", err)
	}
	if e := DecodeAbort([]byte(`{"code":"canceled","code":"internal"}`)); e.Code != CodeBadMessage {
		t.Errorf("abort with two codes decoded as %s", e.Code)
	}
	// A grant is signed, so only a bug in whoever signs it (or the key)
	// could make one ambiguous; it is refused all the same.
	pub := grantKey.Public().(ed25519.PublicKey)
	sign := func(payload string) string {
		signed := GrantPrefix + b64.EncodeToString([]byte(payload))
		return signed + "." + b64.EncodeToString(ed25519.Sign(grantKey, []byte(signed)))
	}
	const grant = `"session":"abcdefgh12345678","agent":"agent-1","device":"printer-1","iat":1795456800,"exp":1795458600`
	if _, err := VerifyGrant(sign(`{`+grant+`}`), pub); err != nil {
		t.Fatalf("control: a plain grant does not verify: %v", err)
	}
	for _, payload := range []string{
		`{` + grant + `,"device":"printer-2"}`,
		`{` + grant + `,"Device":"printer-2"}`,
		"{" + grant + ",\"user\":\"t\xffech\"}",
	} {
		if _, err := VerifyGrant(sign(payload), pub); CodeOf(err) != CodeBadMessage {
			t.Errorf("grant %q: %v, want bad_message", payload, err)
		}
	}
}

// strictMutations returns variants of an accepted JSON message that a strict
// decoder must refuse: its first key repeated, and an invalid UTF-8 byte
// inside its first string.
func strictMutations(b []byte) [][]byte {
	var out [][]byte
	if i := bytes.IndexByte(b, '{'); i >= 0 {
		if j := bytes.IndexByte(b[i:], ','); j > 0 {
			first := b[i+1 : i+j] // `"key":value` of the first member
			if bytes.HasPrefix(first, []byte(`"`)) && bytes.Contains(first, []byte(`":`)) {
				dup := append(append(append([]byte{}, b[:i+1]...), first...), ',')
				out = append(out, append(dup, b[i+1:]...))
			}
		}
	}
	if i := bytes.IndexByte(b, '"'); i >= 0 {
		bad := append(append(append([]byte{}, b[:i+1]...), 0xff), b[i+1:]...)
		out = append(out, bad)
	}
	return out
}
