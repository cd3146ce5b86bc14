package credential

import (
	"errors"
	"testing"
	"time"

	"github.com/pion/turn/v4"
)

func TestGenerateMatchesPionTURNRESTCredentials(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	// pion computes the expiry from time.Now; recompute ours from its username.
	pu, pp, err := turn.GenerateLongTermTURNRESTCredentials(string(secret), "s_abc", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	exp, session, err := Parse(pu)
	if err != nil {
		t.Fatalf("Parse(%q): %v", pu, err)
	}
	u, p := Generate(secret, session, exp)
	if u != pu || p != pp {
		t.Fatalf("Generate = %q/%q, pion = %q/%q", u, p, pu, pp)
	}
}

func TestParseRefusesMalformedUsernames(t *testing.T) {
	tests := []struct {
		name, username string
		ok             bool
	}{
		{"valid", "1700000000:s_1", true},
		{"session with colon", "1700000000:a:b", true},
		{"empty", "", false},
		{"no session", "1700000000", false},
		{"empty session", "1700000000:", false},
		{"negative expiry", "-5:s", false},
		{"zero expiry", "0:s", false},
		{"not a number", "soon:s", false},
		{"overflow", "99999999999999999999:s", false},
		{"long session", "1700000000:" + string(make([]byte, MaxSessionLen+1)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse(tt.username)
			if (err == nil) != tt.ok {
				t.Fatalf("Parse(%q) error = %v, want ok=%v", tt.username, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
		})
	}
}
