package sigclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/porthole-dev/porthole/proto"
)

// TestAPIRefusesAmbiguousAnswers: an answer from signaling that repeats a
// key (also in another case) or carries invalid UTF-8 is refused with
// bad_message, as every wire decoder refuses it; encoding/json alone would
// take the last of two lists.
func TestAPIRefusesAmbiguousAnswers(t *testing.T) {
	for name, body := range map[string]string{
		"repeated key":         `{"devices":[],"devices":[{"id":"other-site-printer"}]}`,
		"repeated key by case": `{"devices":[],"Devices":[{"id":"other-site-printer"}]}`,
		"invalid UTF-8":        "{\"devices\":[{\"id\":\"printer-\xff\"}]}",
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(body))
			}))
			defer srv.Close()
			list, err := (&API{Base: srv.URL, Token: "t", Client: srv.Client()}).Devices(context.Background())
			if proto.CodeOf(err) != proto.CodeBadMessage {
				t.Fatalf("Devices = %+v, %v; want bad_message", list, err)
			}
		})
	}
	// Control: the same answer without the repetition decodes.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"devices":[{"id":"printer-1"}]}`))
	}))
	defer srv.Close()
	list, err := (&API{Base: srv.URL, Token: "t", Client: srv.Client()}).Devices(context.Background())
	if err != nil || len(list.Devices) != 1 {
		t.Fatalf("a plain answer: %+v, %v", list, err)
	}
}
