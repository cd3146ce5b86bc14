package proto

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var goldenTime = time.Date(2026, 12, 7, 14, 30, 0, 0, time.UTC)

// goldenWebhooks freezes the bodies of webhook deliveries and the webhooks
// API (the README's payload examples are these files).
var goldenWebhooks = []struct {
	name  string
	v     any
	fresh func() any
}{
	{"event-session-requested", &WebhookEvent{ID: "ev_7f3a9c2e41d84b6a", Type: WebhookSessionRequested, Time: goldenTime, Site: "acme-hq",
		Device: "printer-2f", User: "u_tech1", Request: "req_51c0e2", Reason: "toner error E-302 on the 2nd floor printer",
		Until: goldenTime.Add(30 * time.Minute)}, func() any { return &WebhookEvent{} }},
	{"event-session-started", &WebhookEvent{ID: "ev_0b6d7e1f9a2c4d35", Type: WebhookSessionStarted, Time: goldenTime, Site: "acme-hq",
		Device: "printer-2f", User: "u_tech1", Session: "s_9d2b1c7e", Until: goldenTime.Add(30 * time.Minute)}, func() any { return &WebhookEvent{} }},
	{"event-session-ended", &WebhookEvent{ID: "ev_5e8c3a0d7b1f4e92", Type: WebhookSessionEnded, Time: goldenTime.Add(12 * time.Minute), Site: "acme-hq",
		Device: "printer-2f", User: "u_tech1", Session: "s_9d2b1c7e", Reason: string(EndByClient)}, func() any { return &WebhookEvent{} }},
	{"event-session-terminated", &WebhookEvent{ID: "ev_c41e9b2a6d0f7385", Type: WebhookSessionTerminated, Time: goldenTime.Add(5 * time.Minute), Site: "acme-hq",
		Device: "printer-2f", User: "u_tech1", Session: "s_9d2b1c7e", Reason: string(EndByAdmin), By: "u_siteadmin"}, func() any { return &WebhookEvent{} }},
	{"webhook-new", &NewWebhook{URL: "https://hooks.acme.example/porthole", Events: []string{WebhookSessionStarted, WebhookSessionEnded}},
		func() any { return &NewWebhook{} }},
	{"webhook-created", &WebhookCreated{WebhookView: WebhookView{ID: "wh_3c9e1a7b", Site: "acme-hq", URL: "https://hooks.acme.example/porthole",
		Events: []string{WebhookSessionStarted, WebhookSessionEnded}, CreatedBy: "u_siteadmin", Created: goldenTime},
		Secret: "whsec_Qm9vbGVhbiBzZWNyZXQgZXhhbXBsZSBvbmx5"}, func() any { return &WebhookCreated{} }},
	{"webhook-deliveries", &WebhookDeliveryList{Deliveries: []WebhookDelivery{
		{ID: "dl_8a1f2c3d4e5b6a79", Event: WebhookSessionEnded, EventID: "ev_5e8c3a0d7b1f4e92", Status: "delivered", Attempts: 2, Code: 200,
			LastError: "", Created: goldenTime.Add(12 * time.Minute), Updated: goldenTime.Add(12*time.Minute + 3*time.Second)},
		{ID: "dl_1b2c3d4e5f6a7b8c", Event: WebhookSessionStarted, EventID: "ev_0b6d7e1f9a2c4d35", Status: "failed", Attempts: 6, Code: 503,
			LastError: "the endpoint answered 503 Service Unavailable", Created: goldenTime, Updated: goldenTime.Add(20 * time.Minute)},
	}}, func() any { return &WebhookDeliveryList{} }},
}

func TestGoldenWebhooks(t *testing.T) {
	for _, tc := range goldenWebhooks {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.MarshalIndent(tc.v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n')
			path := filepath.Join("testdata", "golden", "webhook", tc.name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("wire shape changed:\n got %s\nwant %s", b, want)
			}
			fresh := tc.fresh()
			if err := json.Unmarshal(want, fresh); err != nil {
				t.Fatalf("golden does not decode: %v", err)
			}
			if !reflect.DeepEqual(fresh, tc.v) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", fresh, tc.v)
			}
		})
	}
}

// TestREADMEShowsTheGoldenWebhook: the README's payload example is the
// golden file itself.
func TestREADMEShowsTheGoldenWebhook(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "golden", "webhook", "event-session-terminated.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, append([]byte("```json\n"), golden...)) {
		t.Fatal("README.md's webhook example is not proto/testdata/golden/webhook/event-session-terminated.json")
	}
}
