package relay

import (
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/porthole-dev/porthole/proto"
)

// The credentials signaling mints are the ones pion/turn's TURN REST helpers make.
func TestMintedCredentialsMatchPionTURNREST(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	// pion computes the expiry from time.Now; recompute ours from its username.
	pu, pp, err := turn.GenerateLongTermTURNRESTCredentials(string(secret), "s_abc", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	exp, session, err := proto.ParseTURNUsername(pu)
	if err != nil {
		t.Fatalf("Parse(%q): %v", pu, err)
	}
	u, p := proto.MintTURN(secret, session, exp)
	if u != pu || p != pp {
		t.Fatalf("MintTURN = %q/%q, pion = %q/%q", u, p, pu, pp)
	}
}
