package proto

import (
	"errors"
	"testing"
)

func TestParseTURNUsernameRefusesMalformed(t *testing.T) {
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
		{"long session", "1700000000:" + string(make([]byte, MaxTURNSessionLen+1)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseTURNUsername(tt.username)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseTURNUsername(%q) error = %v, want ok=%v", tt.username, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrTURNUsername) {
				t.Fatalf("error %v does not wrap ErrTURNUsername", err)
			}
		})
	}
}
