package turncred

import (
	"encoding/base64"
	"encoding/hex"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"
	"github.com/porthole-dev/porthole/proto"
)

func TestPasswordKnownAnswer(t *testing.T) {
	// RFC 2202, HMAC-SHA1 test cases 1 and 2.
	tests := []struct {
		key, data, want string
	}{
		{strings.Repeat("\x0b", 20), "Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"},
		{"Jefe", "what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
	}
	for _, tt := range tests {
		got, err := base64.StdEncoding.DecodeString(proto.TURNPassword([]byte(tt.key), tt.data))
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != tt.want {
			t.Errorf("Password(%q, %q) = %x, want %s", tt.key, tt.data, got, tt.want)
		}
	}
}

func TestMintFormat(t *testing.T) {
	exp := time.Date(2026, 11, 23, 18, 30, 0, 999_999_999, time.UTC)
	user, pass := proto.MintTURN([]byte("secret"), "abcdefgh12345678", exp)
	if want := "1795458600:abcdefgh12345678"; user != want {
		t.Errorf("username = %q, want %q (expiry rounded down)", user, want)
	}
	if pass != proto.TURNPassword([]byte("secret"), user) {
		t.Errorf("password does not match HMAC of username")
	}
	if len(pass) != 28 {
		t.Errorf("password %q is not base64 of a 20-byte MAC", pass)
	}
}

// TestMintMatchesPion checks that the relay (pion/turn's TURN REST handler)
// accepts what we mint, and refuses it with another secret.
func TestMintMatchesPion(t *testing.T) {
	secret := "s3cret"
	exp := time.Now().Add(10 * time.Minute)
	user, pass := proto.MintTURN([]byte(secret), "abcdefghijklmnop", exp)
	addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	key, ok := turn.LongTermTURNRESTAuthHandler(secret, nil)(user, "porthole", addr)
	if !ok {
		t.Fatal("pion refused a fresh credential")
	}
	if want := turn.GenerateAuthKey(user, "porthole", pass); string(key) != string(want) {
		t.Error("pion derives a different key from our password")
	}
	// And pion's own generator produces the same password for the same username.
	pu, pp, err := turn.GenerateLongTermTURNRESTCredentials(secret, "abcdefghijklmnop", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ts, _, _ := strings.Cut(pu, ":")
	sec, _ := strconv.ParseInt(ts, 10, 64)
	u2, p2 := proto.MintTURN([]byte(secret), "abcdefghijklmnop", time.Unix(sec, 0))
	if u2 != pu || p2 != pp {
		t.Errorf("Mint = %q/%q, pion = %q/%q", u2, p2, pu, pp)
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in    string
		ok    bool
		creds bool
	}{
		{"stun:127.0.0.1:3478", true, false},
		{"stun:stun.example.com", true, false},
		{"turn:127.0.0.1:3478?transport=udp", true, true},
		{"turn:127.0.0.1:3478?transport=tcp", true, true},
		{"turns:relay.example.com:5349?transport=tcp", true, true},
		{"turn:[::1]:3478", true, true},
		{"http://example.com", false, false},
		{"stun:127.0.0.1:3478?transport=udp", false, false},
		{"turn:127.0.0.1:3478?transport=sctp", false, false},
		{"turn:127.0.0.1:99999", false, false},
		{"turn:user@host:3478", false, false},
		{"turn:", false, false},
		{"stun://host:3478", false, false},
		{"turn:host:3478?foo=bar", false, false},
	}
	for _, tt := range tests {
		u, err := ParseURL(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseURL(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && u.NeedsCredentials() != tt.creds {
			t.Errorf("ParseURL(%q).NeedsCredentials() = %v", tt.in, u.NeedsCredentials())
		}
	}
}

func TestServersForSession(t *testing.T) {
	exp := time.Unix(1795458600, 0)
	tests := []struct {
		name    string
		urls    []string
		secret  string
		wantErr bool
		want    int // ICE servers
	}{
		{"none", nil, "", false, 0},
		{"stun only", []string{"stun:127.0.0.1:3478"}, "", false, 1},
		{"turn without secret", []string{"turn:127.0.0.1:3478?transport=udp"}, "", true, 0},
		{"all", []string{"stun:h:3478", "turn:h:3478?transport=udp", "turn:h:3478?transport=tcp", "turns:h:5349?transport=tcp"}, "k", false, 2},
		{"bad url", []string{"ftp:h"}, "k", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewServers(tt.urls, []byte(tt.secret))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got := s.ForSession("abcdefgh12345678", exp)
			if len(got) != tt.want {
				t.Fatalf("got %d servers, want %d: %+v", len(got), tt.want, got)
			}
			for _, srv := range got {
				turnish := strings.HasPrefix(srv.URLs[0], "turn")
				if turnish != (srv.Username != "") {
					t.Errorf("server %v: credentials only on TURN URLs", srv)
				}
				if turnish {
					if srv.Username != "1795458600:abcdefgh12345678" || srv.Credential != proto.TURNPassword([]byte(tt.secret), srv.Username) {
						t.Errorf("bad credential %q/%q", srv.Username, srv.Credential)
					}
				}
			}
		})
	}
}
