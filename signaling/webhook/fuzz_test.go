package webhook

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// FuzzVerify: any header and body are refused or accepted without a
// panic, and what Sign makes always verifies (and no longer does once the
// body changes).
func FuzzVerify(f *testing.F) {
	f.Add("whsec_k", "t=1800000000,v1=00", []byte(`{"id":"x"}`))
	f.Add("", ",,,=,t=,v1=", []byte{})
	f.Add("k", "t=-99999999999999999999,v1=zz", []byte("a"))
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, secret, header string, body []byte) {
		_ = Verify(secret, header, body, now, time.Minute)
		sig := Sign(secret, now, body)
		if err := Verify(secret, sig, body, now, time.Minute); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if err := Verify(secret, sig, append(body, 'x'), now, time.Minute); err == nil {
			t.Fatal("a changed body verified")
		}
	})
}

// FuzzCheckURL: an accepted endpoint (private destinations not allowed)
// is https and not an internal IP literal.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://hooks.example.com/x", "http://127.0.0.1/", "https://[::ffff:127.0.0.1]/", "https://0x7f.1/", "https://2130706433/", "https://localhost./"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := CheckURL(raw, false)
		if err != nil {
			return
		}
		if u.Scheme != "https" {
			t.Fatalf("%q accepted with scheme %q", raw, u.Scheme)
		}
		if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && Refused(ip) {
			t.Fatalf("%q accepted: %s is internal", raw, ip)
		}
	})
}

// FuzzRefusedIsMappingBlind: an address and its IPv4-mapped form are
// judged alike.
func FuzzRefusedIsMappingBlind(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1})
	f.Add([]byte{8, 8, 8, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 4 {
			return
		}
		v4 := netip.AddrFrom4([4]byte(b))
		if Refused(v4) != Refused(netip.AddrFrom16(v4.As16())) {
			t.Fatalf("%s and its mapped form differ", v4)
		}
	})
}
