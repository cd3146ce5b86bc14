package proto

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// grantKey is a fixed test key so the golden grant is stable.
var grantKey = ed25519.NewKeyFromSeed([]byte("porthole-grant-golden-seed-32byt"))

func goldenGrant() *Grant {
	return &Grant{Session: "abcdefgh12345678", Agent: "agent-1", Device: "printer-1", User: "tech",
		IssuedAt: 1795458600 - 1800, Expires: 1795458600}
}

func TestGoldenGrant(t *testing.T) {
	s, err := SignGrant(goldenGrant(), grantKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden", "grant.txt")
	if *update {
		if err := os.WriteFile(path, []byte(s+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if s+"\n" != string(want) {
		t.Fatalf("grant encoding changed:\n got %s\nwant %s", s, want)
	}
	g, err := VerifyGrant(strings.TrimSpace(string(want)), grantKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if *g != *goldenGrant() {
		t.Fatalf("decoded %+v", g)
	}
}

func TestVerifyGrantRefusesForgeries(t *testing.T) {
	pub := grantKey.Public().(ed25519.PublicKey)
	good, err := SignGrant(goldenGrant(), grantKey)
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	foreign, _ := SignGrant(goldenGrant(), other)
	payload := strings.Split(good, ".")[1]
	sig := strings.Split(good, ".")[2]
	altered := goldenGrant()
	altered.Device = "printer-2"
	alteredPayload, _ := SignGrant(altered, other)
	swapped := GrantPrefix + strings.Split(alteredPayload, ".")[1] + "." + sig
	unsignedJSON := GrantPrefix + base64.RawURLEncoding.EncodeToString([]byte(`{"session":"abcdefgh12345678","agent":"agent-1","device":"printer-1","iat":1,"exp":2}`)) + "." + sig

	for name, s := range map[string]string{
		"empty":            "",
		"other key":        foreign,
		"altered payload":  swapped,
		"no signature":     GrantPrefix + payload,
		"empty signature":  GrantPrefix + payload + ".",
		"extra part":       good + ".x",
		"wrong prefix":     "pg2." + payload + "." + sig,
		"no prefix":        payload + "." + sig,
		"unsigned payload": unsignedJSON,
		"truncated sig":    good[:len(good)-2],
		"oversize":         good + strings.Repeat("A", MaxGrant),
	} {
		t.Run(name, func(t *testing.T) {
			if g, err := VerifyGrant(s, pub); err == nil {
				t.Fatalf("accepted %+v", g)
			}
		})
	}
	if _, err := VerifyGrant(good, pub); err != nil {
		t.Fatalf("good grant refused: %v", err)
	}
}

func TestSignGrantValidates(t *testing.T) {
	for name, mut := range map[string]func(*Grant){
		"bad session":   func(g *Grant) { g.Session = "../x" },
		"bad device":    func(g *Grant) { g.Device = "" },
		"no agent":      func(g *Grant) { g.Agent = "" },
		"expiry first":  func(g *Grant) { g.Expires = g.IssuedAt },
		"too long":      func(g *Grant) { g.Expires = g.IssuedAt + 3600 },
		"bad user":      func(g *Grant) { g.User = "a b" },
		"no issue time": func(g *Grant) { g.IssuedAt = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			g := goldenGrant()
			mut(g)
			if _, err := SignGrant(g, grantKey); err == nil {
				t.Fatal("signed an invalid grant")
			}
		})
	}
}

func FuzzVerifyGrant(f *testing.F) {
	pub := grantKey.Public().(ed25519.PublicKey)
	good, _ := SignGrant(goldenGrant(), grantKey)
	f.Add(good)
	f.Add(GrantPrefix + "e30." + strings.Repeat("A", 86))
	f.Add("pg1...")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := VerifyGrant(s, pub)
		if err != nil {
			return
		}
		// Whatever verifies must be valid and re-sign to a verifying grant.
		if err := g.Validate(); err != nil {
			t.Fatalf("verified an invalid grant: %v", err)
		}
		again, err := SignGrant(g, grantKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyGrant(again, pub); err != nil {
			t.Fatal(err)
		}
	})
}
