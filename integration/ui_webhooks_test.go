package integration

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/webhook"
)

// TestUIWebhooksPanel drives the Webhooks view in Chromium as the site's
// site admin: add an endpoint (a real HTTP server), see its secret once,
// send a test event (which arrives signed with that secret), and read the
// delivery log; the secret is gone once dismissed and after a reload. A
// technician of the site sees no Webhooks link.
func TestUIWebhooksPanel(t *testing.T) {
	const pw = "ui-webhooks-password-1"
	s := stack.Start(t, stack.Options{
		Users: []stack.User{
			{Name: "cust", Password: pw, Roles: []string{"siteadmin"}},
			{Name: "tech", Password: pw, Roles: []string{"user"}},
		},
		SignalingArgs: []string{"--webhook-allow-private", "--webhook-retry-delay", "200ms"},
	})
	recv := &hookReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	ctx := brBrowser(t)
	art := testenv.ArtifactsDir(t)
	defer func() {
		if t.Failed() {
			brShot(t, ctx, art, "failure")
		}
	}()
	js := func(expr string) { brEval[bool](t, ctx, "("+expr+", true)") }

	uiLogin(t, ctx, s, "tech", pw)
	if brEval[bool](t, ctx, `!document.querySelector('#nav-webhooks').hidden`) {
		t.Error("a technician sees the Webhooks link")
	}
	js(`document.querySelector('#signout').click()`)
	brWait(t, ctx, "signed out", `!document.querySelector('#signin').hidden`)

	uiLogin(t, ctx, s, "cust", pw)
	brWait(t, ctx, "the Webhooks link", `!document.querySelector('#nav-webhooks').hidden`)
	js(`document.querySelector('#nav-webhooks').click()`)
	brWait(t, ctx, "the Webhooks view", `!document.querySelector('#webhooks').hidden && document.querySelector('#webhook-site').value === 'lab'`)
	brWait(t, ctx, "the empty state", `document.querySelector('#webhook-empty').textContent.includes('No webhooks yet')`)

	js(fmt.Sprintf(`document.querySelector('#webhook-url').value = %q`, srv.URL+"/hook"))
	js(`document.querySelector('#webhook-form').requestSubmit()`)
	brWait(t, ctx, "the secret, once", `!document.querySelector('#webhook-secret').hidden`)
	secret := brEval[string](t, ctx, `document.querySelector('#webhook-secret-value').textContent`)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret shown %q", secret)
	}
	brWait(t, ctx, "the endpoint's row", fmt.Sprintf(`[...document.querySelectorAll('#webhook-rows tr')].some(r => r.textContent.includes(%q))`, srv.URL+"/hook"))
	axeCheck(t, ctx, axeSource(t), "webhooks")

	// Send test: the event arrives, signed with the secret the page showed.
	js(`[...document.querySelectorAll('#webhook-rows button')].find(b => b.textContent === 'Send test').click()`)
	_, attempts := recv.event(t, proto.WebhookTest)
	for _, r := range attempts {
		if err := webhook.Verify(secret, r.header.Get(proto.WebhookSignatureHeader), r.body, time.Now(), time.Minute); err != nil {
			t.Fatalf("the test event does not verify with the secret shown: %v", err)
		}
	}
	id := attempts[0].header.Get(proto.WebhookDeliveryHeader)
	js(`[...document.querySelectorAll('#webhook-rows button')].find(b => b.textContent === 'Deliveries').click()`)
	brWait(t, ctx, "the delivery in the log", fmt.Sprintf(`!!document.querySelector('#delivery-rows tr[data-delivery=%q][data-status="delivered"]')`, id))
	if got := brEval[string](t, ctx, fmt.Sprintf(`document.querySelector('#delivery-rows tr[data-delivery=%q]').textContent`, id)); !strings.Contains(got, "Delivered") || !strings.Contains(got, "1 attempt · HTTP 200") {
		t.Errorf("delivery row %q", got)
	}

	// Dismissed, the secret is gone from the page; after a reload too.
	js(`document.querySelector('#webhook-secret-done').click()`)
	if brEval[bool](t, ctx, `!document.querySelector('#webhook-secret').hidden || document.body.innerHTML.includes(`+fmt.Sprintf("%q", secret)+`)`) {
		t.Error("the secret stays on the page after it was dismissed")
	}
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	brWait(t, ctx, "the Webhooks view again", `!document.querySelector('#webhooks').hidden && document.querySelectorAll('#webhook-rows tr').length === 1`)
	if brEval[bool](t, ctx, `document.body.innerHTML.includes(`+fmt.Sprintf("%q", secret)+`)`) {
		t.Error("the secret is shown again after a reload")
	}
}
