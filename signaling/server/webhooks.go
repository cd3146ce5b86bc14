package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/hub"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/webhook"
)

// Webhooks (issue 18): the site's subscriptions, for admins and the site's
// site admins (the customer's people decide where their notifications go;
// the dealer's configurers and technicians do not see them, since a
// subscription's URL and log are the customer's). Every change is in the
// admin audit log. Config.Webhooks delivers; Config.Notify receives the
// events, including those emitted here from the hub's session events.

// maxWebhooksPerSite bounds a site's subscriptions (each event is one
// request per subscription).
const maxWebhooksPerSite = 20

func (s *Server) webhookRoutes(mux *http.ServeMux) {
	type methods = map[string]http.HandlerFunc
	get := func(h func(http.ResponseWriter, *http.Request, *principal)) http.HandlerFunc {
		return s.authed(proto.ScopeRead, h)
	}
	manage := func(h func(http.ResponseWriter, *http.Request, *principal)) http.HandlerFunc {
		return s.authed(proto.ScopeManage, h)
	}
	mux.Handle(proto.PathWebhooks, s.api(methods{"GET": get(s.listWebhooks), "POST": manage(s.createWebhook)}))
	mux.Handle(proto.PathWebhook, s.api(methods{"DELETE": manage(s.deleteWebhook)}))
	mux.Handle(proto.PathWebhookTest, s.api(methods{"POST": manage(s.testWebhook)}))
	mux.Handle(proto.PathWebhookDeliveries, s.api(methods{"GET": get(s.listDeliveries)}))
}

// webhookSite checks that p may manage the webhooks of the request's site
// and that signaling delivers webhooks at all. A caller with no role on the
// site gets 404 (no existence leak), one with another role 403.
func (s *Server) webhookSite(w http.ResponseWriter, r *http.Request, p *principal) (string, bool) {
	site := r.PathValue("site")
	switch {
	case p.admin():
		if _, err := s.store.Site(r.Context(), site); err != nil {
			s.fail(w, err)
			return "", false
		}
	case p.user.HasRole(site, store.RoleSiteAdmin):
	case len(p.user.Roles[site]) > 0:
		s.refuse(r, "not a site admin", "user", p.id(), "site", site)
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "site admins and administrators only"))
		return "", false
	default:
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such site"))
		return "", false
	}
	if s.cfg.Webhooks == nil {
		writeError(w, http.StatusServiceUnavailable, proto.Errorf(proto.CodeUnsupported, "this signaling server delivers no webhooks"))
		return "", false
	}
	return site, true
}

// siteWebhook finds the request's subscription on site; another site's
// is not found.
func (s *Server) siteWebhook(w http.ResponseWriter, r *http.Request, site string) (*store.Webhook, bool) {
	wh, err := s.store.Webhook(r.Context(), r.PathValue("id"))
	if err != nil || wh.Site != site {
		if err == nil || errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such webhook"))
		} else {
			s.fail(w, err)
		}
		return nil, false
	}
	return wh, true
}

func webhookView(w *store.Webhook) proto.WebhookView {
	return proto.WebhookView{ID: w.ID, Site: w.Site, URL: w.URL, Events: w.Events, CreatedBy: w.CreatedBy, Created: w.Created}
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, p *principal) {
	site, ok := s.webhookSite(w, r, p)
	if !ok {
		return
	}
	hooks, err := s.store.Webhooks(r.Context(), site)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := proto.WebhookList{Webhooks: make([]proto.WebhookView, 0, len(hooks))}
	for _, h := range hooks {
		out.Webhooks = append(out.Webhooks, webhookView(h))
	}
	writeJSON(w, http.StatusOK, &out)
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, p *principal) {
	site, ok := s.webhookSite(w, r, p)
	if !ok {
		return
	}
	var req proto.NewWebhook
	if !decodeBody(w, r, &req) {
		return
	}
	if err := s.cfg.Webhooks.CheckURL(req.URL); err != nil {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "%v", err))
		return
	}
	var events []string
	for _, e := range req.Events {
		if !slices.Contains(proto.WebhookTypes, e) {
			writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "unknown event type %q", e))
			return
		}
		if !slices.Contains(events, e) {
			events = append(events, e)
		}
	}
	existing, err := s.store.Webhooks(r.Context(), site)
	if err != nil {
		s.fail(w, err)
		return
	}
	if len(existing) >= maxWebhooksPerSite {
		writeError(w, http.StatusConflict, proto.Errorf(proto.CodeRateLimited, "a site has at most %d webhooks", maxWebhooksPerSite))
		return
	}
	wh := &store.Webhook{ID: webhook.NewID("wh_"), Site: site, URL: req.URL, Events: events, Secret: webhook.NewSecret(),
		CreatedBy: p.id(), Created: s.now().UTC()}
	if err := s.store.PutWebhook(r.Context(), wh); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.accounts.Audit(r.Context(), p.id(), "webhook.create", wh.ID, site,
		map[string]string{"url": wh.URL, "events": strings.Join(events, ",")}); err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("webhook created", "webhook", wh.ID, "site", site, "url", wh.URL, "by", p.id())
	writeJSON(w, http.StatusCreated, &proto.WebhookCreated{WebhookView: webhookView(wh), Secret: wh.Secret})
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, p *principal) {
	site, ok := s.webhookSite(w, r, p)
	if !ok {
		return
	}
	wh, ok := s.siteWebhook(w, r, site)
	if !ok {
		return
	}
	if err := s.store.DeleteWebhook(r.Context(), wh.ID); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.accounts.Audit(r.Context(), p.id(), "webhook.delete", wh.ID, site, map[string]string{"url": wh.URL}); err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("webhook deleted", "webhook", wh.ID, "site", site, "by", p.id())
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) testWebhook(w http.ResponseWriter, r *http.Request, p *principal) {
	site, ok := s.webhookSite(w, r, p)
	if !ok {
		return
	}
	wh, ok := s.siteWebhook(w, r, site)
	if !ok {
		return
	}
	ev := s.cfg.Webhooks.Test(wh, p.id())
	if err := s.accounts.Audit(r.Context(), p.id(), "webhook.test", wh.ID, site, map[string]string{"event": ev.ID}); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, &ev)
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request, p *principal) {
	site, ok := s.webhookSite(w, r, p)
	if !ok {
		return
	}
	wh, ok := s.siteWebhook(w, r, site)
	if !ok {
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > webhook.DefaultKeep {
		limit = webhook.DefaultKeep
	}
	ds, err := s.store.Deliveries(r.Context(), wh.ID, limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := proto.WebhookDeliveryList{Deliveries: make([]proto.WebhookDelivery, 0, len(ds))}
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, proto.WebhookDelivery{ID: d.ID, Event: d.Event, EventID: d.EventID, Status: d.Status,
			Attempts: d.Attempts, Code: d.Code, LastError: d.LastError, Created: d.Created, Updated: d.Updated})
	}
	writeJSON(w, http.StatusOK, &out)
}

// sessionWebhook turns the hub's session events into webhook events:
// session.started at a session's first connection (later ones are path
// changes), session.terminated when an admin or site admin ended it,
// session.ended otherwise. It runs under the hub's lock: it only hands
// the event to Notify's queue.
func (s *Server) sessionWebhook(e hub.Event) {
	if s.cfg.Notify == nil || e.Site == "" {
		return
	}
	ev := proto.WebhookEvent{ID: webhook.NewID("ev_"), Time: e.Time.UTC(), Site: e.Site, Device: e.Device, User: e.User, Session: e.Session}
	switch e.State {
	case hub.EventConnected:
		s.hookMu.Lock()
		first := !s.hookStarted[e.Session]
		if first {
			s.hookStarted[e.Session] = true
		}
		s.hookMu.Unlock()
		if !first {
			return
		}
		ev.Type, ev.Until = proto.WebhookSessionStarted, e.Expires.UTC()
	case hub.EventEnded:
		s.hookMu.Lock()
		delete(s.hookStarted, e.Session)
		s.hookMu.Unlock()
		ev.Type, ev.Reason = proto.WebhookSessionEnded, e.Reason
		if e.Reason == string(proto.EndByAdmin) {
			ev.Type, ev.By = proto.WebhookSessionTerminated, e.By
		}
	default:
		return
	}
	s.notify(context.Background(), ev)
}
