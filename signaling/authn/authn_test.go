package authn

import (
	"strings"
	"testing"
	"time"
)

func TestPasswordHashVerifies(t *testing.T) {
	h := HashPassword("correct horse battery", FastParams)
	if !strings.HasPrefix(h, "$argon2id$v=19$") {
		t.Fatalf("hash %q is not an argon2id PHC string", h)
	}
	if !VerifyPassword(h, "correct horse battery") {
		t.Fatal("right password refused")
	}
	for _, bad := range []string{"", "correct horse batter", "Correct horse battery"} {
		if VerifyPassword(h, bad) {
			t.Fatalf("wrong password %q accepted", bad)
		}
	}
	if h2 := HashPassword("correct horse battery", FastParams); h2 == h {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=64,t=1,p=1$AAAA$AAAA", "$2a$10$abc", h[:len(h)-4], strings.Replace(h, "m=64", "m=99999999", 1)} {
		if VerifyPassword(bad, "correct horse battery") {
			t.Fatalf("malformed hash %q matched", bad)
		}
	}
}

func TestPasswordPolicy(t *testing.T) {
	if CheckPasswordPolicy("short") == nil || CheckPasswordPolicy(strings.Repeat("x", 257)) == nil {
		t.Fatal("out-of-range password accepted")
	}
	if err := CheckPasswordPolicy("long enough pw"); err != nil {
		t.Fatal(err)
	}
}

func TestTOTPAcceptsOneStepEitherSideOnce(t *testing.T) {
	secret, url, err := NewTOTPSecret("Porthole", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "otpauth://totp/") {
		t.Fatalf("url %q", url)
	}
	now := time.Unix(1_700_000_000, 0)
	cur := now.Unix() / TOTPPeriod
	for _, tc := range []struct {
		name   string
		at     time.Time
		wantOK bool
	}{
		{"previous step", now.Add(-TOTPPeriod * time.Second), true},
		{"current step", now, true},
		{"next step", now.Add(TOTPPeriod * time.Second), true},
		{"two steps back", now.Add(-2 * TOTPPeriod * time.Second), false},
		{"two steps ahead", now.Add(2 * TOTPPeriod * time.Second), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, err := TOTPCode(secret, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			step, ok := CheckTOTP(secret, code, now, 0)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if ok && step != tc.at.Unix()/TOTPPeriod {
				t.Fatalf("step %d, want %d", step, tc.at.Unix()/TOTPPeriod)
			}
			// Single use: once step is recorded as used, the same code fails.
			if ok {
				if _, again := CheckTOTP(secret, code, now, step); again {
					t.Fatal("code accepted twice")
				}
			}
		})
	}
	// After the next step's code was used, the current one is refused too.
	code, _ := TOTPCode(secret, now)
	if _, ok := CheckTOTP(secret, code, now, cur+1); ok {
		t.Fatal("older code accepted after a newer one")
	}
	if _, ok := CheckTOTP(secret, "12345", now, 0); ok {
		t.Fatal("five digits accepted")
	}
}

func TestRecoveryCodes(t *testing.T) {
	codes, hashes := NewRecoveryCodes(10)
	if len(codes) != 10 || len(hashes) != 10 {
		t.Fatal("wrong count")
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if len(c) != 11 || c[5] != '-' || seen[c] {
			t.Fatalf("code %q", c)
		}
		seen[c] = true
		if HashRecoveryCode(strings.ToUpper(strings.ReplaceAll(c, "-", " "))) != hashes[i] {
			t.Fatal("normalised code does not match its hash")
		}
	}
}

func TestPKCE(t *testing.T) {
	verifier := strings.Repeat("a", 43)
	ch := S256(verifier)
	if !ValidChallenge(ch) || !VerifyPKCE(ch, verifier) {
		t.Fatal("right verifier refused")
	}
	// RFC 7636 appendix B.
	if got := S256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Fatalf("S256 = %s", got)
	}
	for _, bad := range []string{verifier + "b", strings.Repeat("a", 42), "", strings.Repeat("a", 129)} {
		if VerifyPKCE(ch, bad) {
			t.Fatalf("verifier %q accepted", bad)
		}
	}
	if VerifyPKCE(verifier, verifier) {
		t.Fatal("plain challenge (challenge == verifier) accepted")
	}
	if ValidChallenge("short") || ValidChallenge(ch+"A") || ValidChallenge(strings.Repeat("*", 43)) {
		t.Fatal("malformed challenge accepted")
	}
}
