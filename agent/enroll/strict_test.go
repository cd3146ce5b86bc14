package enroll

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/porthole-dev/porthole/proto"
)

// TestEnrollRefusesAnAmbiguousAnswer: signaling's enrollment answer carries
// the agent's certificate, CA and grant key; one that repeats a key (also
// in another case) or holds invalid UTF-8 is refused with bad_message and
// nothing is stored, as every wire decoder refuses it.
func TestEnrollRefusesAnAmbiguousAnswer(t *testing.T) {
	for name, body := range map[string]string{
		"repeated grant key":         `{"agent":"agent-1","grantKey":"AAAA","grantKey":"BBBB"}`,
		"repeated grant key by case": `{"agent":"agent-1","grantKey":"AAAA","GrantKey":"BBBB"}`,
		"invalid UTF-8":              "{\"agent\":\"agent-\xff\"}",
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != proto.PathEnroll {
					http.NotFound(w, r)
					return
				}
				_, _ = w.Write([]byte(body))
			}))
			defer srv.Close()
			dir := t.TempDir()
			st, err := Enroll(context.Background(), srv.URL, "token", dir, Options{Client: srv.Client()})
			if proto.CodeOf(err) != proto.CodeBadMessage {
				t.Fatalf("Enroll = %v, %v; want bad_message", st, err)
			}
			if _, err := os.Stat(filepath.Join(dir, StateFile)); !os.IsNotExist(err) {
				t.Fatalf("state stored after a refused answer: %v", err)
			}
		})
	}
}
