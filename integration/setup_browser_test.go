package integration

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/porthole-dev/porthole/integration/stack"
)

// The session window's relay frame loads with its HTML, before the window
// knows whether it will hold the session (shell.js startRelay). A second
// window of a live session is refused; its relay must never speak for the
// session: it is gone with the refusal, and the first window's device page
// goes on working through the same worker.
func TestSecondWindowLeavesTheSessionAlone(t *testing.T) {
	s := stack.Start(t, stack.Options{})
	ctx := brBrowser(t)
	info := brSession(t, s)
	first := brOpen(t, ctx, info, "/")

	second, cancel := chromedp.NewContext(ctx)
	defer cancel()
	if err := chromedp.Do(second, chromedp.Navigate(info.ShellOrigin+"/#token="+info.Token)); err != nil {
		t.Fatalf("open a second window: %v", err)
	}
	brWait(t, second, "the second window refused", `!!document.querySelector('.ended') && !document.getElementById('relay') && !document.querySelector('iframe')`)
	ended := brEval[string](t, second, `document.querySelector('.ended').innerText`)
	if strings.TrimSpace(ended) == "" {
		t.Fatal("the second window says nothing about why it is refused")
	}

	// The first window still holds the session: a navigation in its frame
	// is carried (a new document, through the worker and its tunnel).
	first.navigate(t, "/supplies", `d.body.innerText.includes('Porthole LaserJet 4000')`)
	if n := brEval[int](t, ctx, `document.querySelectorAll('iframe').length`); n != 2 {
		t.Errorf("the first window has %d frames, want its relay and device frames", n)
	}
	t.Logf("second window: %q", strings.Join(strings.Fields(ended), " "))
}
