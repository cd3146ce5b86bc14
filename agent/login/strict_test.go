package login

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/porthole-dev/porthole/proto"
)

// TestDiscoverRefusesAmbiguousMetadata: authorization server metadata that
// names an endpoint twice (also in another case) or holds invalid UTF-8 is
// refused with bad_message, not resolved last-wins.
func TestDiscoverRefusesAmbiguousMetadata(t *testing.T) {
	const ok = `"issuer":"%[1]s","authorization_endpoint":"%[1]s/oauth/authorize","code_challenge_methods_supported":["S256"]`
	for name, body := range map[string]string{
		"repeated token endpoint":         `{` + ok + `,"token_endpoint":"%[1]s/oauth/token","token_endpoint":"https://attacker.example/token"}`,
		"repeated token endpoint by case": `{` + ok + `,"token_endpoint":"%[1]s/oauth/token","Token_Endpoint":"https://attacker.example/token"}`,
		"invalid UTF-8":                   "{" + ok + ",\"token_endpoint\":\"%[1]s/oauth/token\xff\"}",
		"control":                         `{` + ok + `,"token_endpoint":"%[1]s/oauth/token"}`,
	} {
		t.Run(name, func(t *testing.T) {
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != proto.PathOAuthMetadata {
					http.NotFound(w, r)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(fmt.Sprintf(body, srv.URL)))
			}))
			defer srv.Close()
			ep, err := Discover(context.Background(), srv.Client(), srv.URL)
			if name == "control" {
				if err != nil || ep.Token != srv.URL+"/oauth/token" {
					t.Fatalf("plain metadata: %+v, %v", ep, err)
				}
				return
			}
			if proto.CodeOf(err) != proto.CodeBadMessage {
				t.Fatalf("Discover = %+v, %v; want bad_message", ep, err)
			}
		})
	}
}
