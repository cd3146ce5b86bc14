package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/signaling/store"
)

func testWebhooks(t *testing.T, open Factory) {
	s := newStore(t, open)
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	wantErr(t, s.PutWebhook(ctx, &store.Webhook{ID: "w0"}), store.ErrBadRecord)
	for i, site := range []string{"a", "b", "a"} {
		must(t, s.PutWebhook(ctx, &store.Webhook{ID: fmt.Sprintf("w%d", i+1), Site: site, URL: "https://hooks.example/" + site,
			Events: []string{"session.started"}, Secret: "s3cret", CreatedBy: "u1", Created: base.Add(time.Duration(i) * time.Minute)}))
	}
	wantErr(t, s.PutWebhook(ctx, &store.Webhook{ID: "w1", Site: "a"}), store.ErrExists)
	w, err := s.Webhook(ctx, "w2")
	must(t, err)
	if w.Site != "b" || w.Secret != "s3cret" || len(w.Events) != 1 || !w.Created.Equal(base.Add(time.Minute)) {
		t.Fatalf("Webhook = %+v", w)
	}
	_, err = s.Webhook(ctx, "nope")
	wantErr(t, err, store.ErrNotFound)
	a, err := s.Webhooks(ctx, "a")
	must(t, err)
	if len(a) != 2 || a[0].ID != "w1" || a[1].ID != "w3" {
		t.Fatalf("Webhooks(a) = %+v", a)
	}
	if none, err := s.Webhooks(ctx, "zzz"); err != nil || len(none) != 0 {
		t.Fatalf("Webhooks(zzz) = %v, %v", none, err)
	}

	// A bounded log, newest first; an update keeps its place.
	for i := range 5 {
		must(t, s.PutDelivery(ctx, &store.WebhookDelivery{ID: fmt.Sprintf("d%d", i), Webhook: "w1", Event: "session.started",
			EventID: fmt.Sprintf("e%d", i), Status: store.DeliveryPending, Attempts: 1, Created: base.Add(time.Duration(i) * time.Second),
			Updated: base.Add(time.Duration(i) * time.Second)}, 3))
	}
	must(t, s.PutDelivery(ctx, &store.WebhookDelivery{ID: "d3", Webhook: "w1", Event: "session.started", EventID: "e3",
		Status: store.DeliveryDelivered, Attempts: 2, Code: 204, LastError: "", Created: base.Add(time.Hour), Updated: base.Add(time.Hour)}, 3))
	ds, err := s.Deliveries(ctx, "w1", 0)
	must(t, err)
	if len(ds) != 3 || ds[0].ID != "d4" || ds[1].ID != "d3" || ds[2].ID != "d2" {
		t.Fatalf("Deliveries = %v, want d4 d3 d2", deliveryIDs(ds))
	}
	if d := ds[1]; d.Status != store.DeliveryDelivered || d.Attempts != 2 || d.Code != 204 || !d.Created.Equal(base.Add(3*time.Second)) {
		t.Fatalf("updated delivery = %+v", d)
	}
	if one, _ := s.Deliveries(ctx, "w1", 1); len(one) != 1 || one[0].ID != "d4" {
		t.Fatalf("Deliveries limit 1 = %v", deliveryIDs(one))
	}
	wantErr(t, s.PutDelivery(ctx, &store.WebhookDelivery{ID: "x", Webhook: "nope", Created: base}, 3), store.ErrNotFound)
	wantErr(t, s.PutDelivery(ctx, &store.WebhookDelivery{Webhook: "w1"}, 3), store.ErrBadRecord)

	must(t, s.DeleteWebhook(ctx, "w1"))
	wantErr(t, s.DeleteWebhook(ctx, "w1"), store.ErrNotFound)
	if ds, _ := s.Deliveries(ctx, "w1", 0); len(ds) != 0 {
		t.Fatalf("deliveries outlived their webhook: %v", deliveryIDs(ds))
	}
	if a, _ := s.Webhooks(ctx, "a"); len(a) != 1 || a[0].ID != "w3" {
		t.Fatalf("Webhooks(a) after delete = %+v", a)
	}
	// A new subscription under a deleted one's ID starts with an empty log.
	must(t, s.PutWebhook(ctx, &store.Webhook{ID: "w1", Site: "a", URL: "https://x.example", Secret: "s", Created: base}))
	if ds, _ := s.Deliveries(ctx, "w1", 0); len(ds) != 0 {
		t.Fatalf("a recreated webhook has deliveries: %v", deliveryIDs(ds))
	}
}

func deliveryIDs(ds []*store.WebhookDelivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}
