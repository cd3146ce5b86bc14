// Package devtools reaches the parts of a Porthole session in Chromium that
// a test cannot script from the session window: the device frame and the
// relay frame run on the session's device origin, cross-origin to the
// window, and with Origin-Agent-Cluster each is a target of its own (an
// out-of-process iframe, type "iframe"); popped-out device tabs are targets
// of type "page". Targets attaches to them by URL through the Chrome
// DevTools Protocol, as a debugger would: no test hook in the product.
package devtools

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// ErrNoTarget is returned when no target matches.
var ErrNoTarget = errors.New("devtools: no such target")

// Targets finds and attaches to targets of one browser. It keeps each
// attachment for the life of root, so repeated evaluations cost nothing
// extra; Close detaches them all without closing anything.
type Targets struct {
	root context.Context

	mu       sync.Mutex
	attached map[target.ID]attachment
}

type attachment struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a Targets for the browser of root, a chromedp context that
// has run already.
func New(root context.Context) *Targets {
	return &Targets{root: root, attached: map[target.ID]attachment{}}
}

// Find returns a context attached to the first target of type kind
// ("iframe", "page") whose URL satisfies match.
func (t *Targets) Find(kind string, match func(url string) bool) (context.Context, error) {
	infos, err := chromedp.Targets(t.root)
	if err != nil {
		return nil, err
	}
	for _, info := range infos {
		if info.Type != kind || !match(info.URL) {
			continue
		}
		t.mu.Lock()
		a, ok := t.attached[info.TargetID]
		if !ok {
			ctx, cancel := chromedp.NewContext(t.root, chromedp.WithTargetID(info.TargetID), chromedp.WithDetachOnCancel())
			a = attachment{ctx, cancel}
			t.attached[info.TargetID] = a
		}
		t.mu.Unlock()
		return a.ctx, nil
	}
	return nil, ErrNoTarget
}

// Forget drops the attachment of a target that went away, so the next Find
// attaches afresh.
func (t *Targets) Forget(ctx context.Context) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, a := range t.attached {
		if a.ctx == ctx {
			a.cancel()
			delete(t.attached, id)
		}
	}
}

// Close detaches from every target.
func (t *Targets) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, a := range t.attached {
		a.cancel()
		delete(t.attached, id)
	}
}

// OnOrigin matches URLs on origin, excluding Porthole's own paths there
// (the relay frame, the end page): the device's pages.
func OnOrigin(origin string) func(string) bool {
	return func(u string) bool {
		return (u == origin || strings.HasPrefix(u, origin+"/")) && !strings.HasPrefix(u, origin+"/__t/")
	}
}

// Prefix matches URLs that start with p.
func Prefix(p string) func(string) bool {
	return func(u string) bool { return strings.HasPrefix(u, p) }
}
