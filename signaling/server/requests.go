package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
)

// Approval requests (issue 18): a technician asks for a session on a device
// whose policy needs approval, with a reason and a length; the site's admins
// see it live in the app and approve or deny it with a comment; nobody's
// answer expires it (proto.RequestAnswerWithin), and an approval is good for
// one session opened within proto.ApprovalUseWithin (prepareSession
// consumes it). A request never reaches the agent: only the session opened
// with an approval does, with the approval in its grant.

// requestHorizon is how far back request lists reach.
const requestHorizon = 24 * time.Hour

// requestExpiry is how long a request waits for an answer.
func (s *Server) requestExpiry() time.Duration {
	if d := s.cfg.RequestExpiry; d > 0 {
		return d
	}
	return proto.RequestAnswerWithin
}

// maxPendingPerUser bounds a technician's pending requests.
const maxPendingPerUser = 5

var errDecided = errors.New("the request was answered already")

// expireRequest turns a pending or approved request whose time is up into
// an expired one, once (whoever wins the update announces it).
func (s *Server) expireRequest(ctx context.Context, r *store.Request) *store.Request {
	now := s.now()
	if (r.State != proto.RequestPending && r.State != proto.RequestApproved) || now.Before(r.Expires) {
		return r
	}
	var was string
	got, err := s.store.UpdateRequest(ctx, r.ID, func(r *store.Request) error {
		if (r.State != proto.RequestPending && r.State != proto.RequestApproved) || now.Before(r.Expires) {
			return errDecided
		}
		was, r.State = r.State, proto.RequestExpired
		return nil
	})
	if err != nil {
		if !errors.Is(err, errDecided) {
			s.log.Warn("expire request", "request", r.ID, "err", err)
		}
		if fresh, err := s.store.Request(ctx, r.ID); err == nil {
			return fresh
		}
		return r
	}
	why := "nobody answered in time"
	if was == proto.RequestApproved {
		why = "the approval was not used in time"
	}
	s.log.Info("approval request expired", "request", r.ID, "site", r.Site, "user", r.User, "device", r.Device, "why", why)
	_ = s.accounts.Audit(ctx, "system", "request.expire", r.ID, r.Site, map[string]string{"user": r.User, "device": r.Device, "why": why})
	s.notify(ctx, proto.WebhookEvent{Type: proto.WebhookSessionExpired, Site: r.Site, Device: r.Device, User: r.User,
		Request: r.ID, Reason: r.Reason})
	return got
}

// requestNames are the names people read in a request instead of IDs.
type requestNames struct {
	jobNames
	devices map[[2]string]string
}

func (s *Server) requestNames(ctx context.Context) requestNames {
	n := requestNames{jobNames: s.jobNames(ctx), devices: map[[2]string]string{}}
	if all, err := s.allDevices(ctx); err == nil {
		for _, d := range all {
			n.devices[[2]string{d.Agent, d.ID}] = d.Name
		}
	}
	return n
}

func (s *Server) requestView(p *principal, r *store.Request, n requestNames) proto.RequestView {
	return proto.RequestView{ID: r.ID, Site: r.Site, SiteName: n.sites[r.Site], Agent: r.Agent, Device: r.Device,
		DeviceName: n.devices[[2]string{r.Agent, r.Device}], User: r.User, UserName: n.users[r.User], Reason: r.Reason,
		Minutes: r.Minutes, State: r.State, Created: r.Created, Expires: r.Expires, DecidedBy: r.DecidedBy,
		DeciderName: n.users[r.DecidedBy], Decided: r.Decided, Comment: r.Comment, Session: r.Session,
		CanDecide: r.State == proto.RequestPending && mayDecide(p, r)}
}

// mayDecide: the site's own admins answer requests, never the requester.
func mayDecide(p *principal, r *store.Request) bool {
	return siteAdmin(p, r.Site) && p.id() != r.User
}

// maySeeRequest: the requester, the site's admins and the global admins.
func maySeeRequest(p *principal, r *store.Request) bool {
	return p.admin() || r.User == p.id() || siteAdmin(p, r.Site)
}

// createRequest answers POST PathRequests.
func (s *Server) createRequest(w http.ResponseWriter, r *http.Request, p *principal) {
	var req proto.NewRequest
	if !decodeBody(w, r, &req) {
		return
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if err := req.Validate(); err != nil {
		writeError(w, httpStatus(err), err)
		return
	}
	agent, ok := s.mayOpen(w, r, p, req.Device, req.Agent)
	if !ok {
		return
	}
	ctx := r.Context()
	site := s.agentSite(agent)
	if site == "" {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "this device belongs to no site: nobody can approve a request for it"))
		return
	}
	sp, err := s.sitePolicy(ctx, site)
	if err != nil {
		s.fail(w, err)
		return
	}
	dp, err := s.devicePolicy(ctx, agent, req.Device)
	if err != nil {
		s.fail(w, err)
		return
	}
	now := s.now()
	if open, _ := sp.Open(now); !open {
		err := s.refusedByPolicy(ctx, site, p.id(), agent, req.Device, sp.ClosedError(now))
		writeError(w, httpStatus(err), err)
		return
	}
	if !sp.RequireApproval && !dp.RequireApproval {
		writeError(w, http.StatusConflict, proto.Errorf(proto.CodeExists, "this device needs no approval: open it"))
		return
	}
	list, err := s.store.Requests(ctx, site, now.Add(-requestHorizon))
	if err != nil {
		s.fail(w, err)
		return
	}
	pending := 0
	for _, old := range list {
		if old.User == p.id() && s.expireRequest(ctx, old).State == proto.RequestPending {
			pending++
		}
	}
	if pending >= maxPendingPerUser {
		writeError(w, http.StatusTooManyRequests, proto.Errorf(proto.CodeRateLimited, "you have %d requests waiting for an answer already", pending))
		return
	}
	sr := &store.Request{ID: strings.ToLower(rand.Text()), Site: site, Agent: agent, Device: req.Device, User: p.id(),
		Reason: req.Reason, Minutes: req.Minutes, State: proto.RequestPending, Created: now.UTC(), Expires: now.Add(s.requestExpiry()).UTC()}
	if err := s.store.PutRequest(ctx, sr); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.accounts.Audit(ctx, p.id(), "request.create", sr.ID, site, map[string]string{"device": sr.Device, "agent": agent,
		"reason": sr.Reason, "minutes": strconv.Itoa(sr.Minutes)}); err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("approval requested", "request", sr.ID, "site", site, "user", p.id(), "device", sr.Device, "minutes", sr.Minutes)
	s.notify(ctx, proto.WebhookEvent{Type: proto.WebhookSessionRequested, Site: site, Device: sr.Device, User: sr.User,
		Request: sr.ID, Reason: sr.Reason, Until: sr.Expires})
	writeJSON(w, http.StatusCreated, s.requestView(p, sr, s.requestNames(ctx)))
}

// listRequests answers GET PathRequests: the site admins' sites' requests
// and the caller's own, of the last day, newest first; ?state= filters.
func (s *Server) listRequests(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	var sites []string
	if p.admin() {
		all, err := s.store.Sites(ctx)
		if err != nil {
			s.fail(w, err)
			return
		}
		for _, st := range all {
			sites = append(sites, st.ID)
		}
	} else {
		for site := range p.user.Roles {
			sites = append(sites, site)
		}
	}
	slices.Sort(sites)
	state := r.URL.Query().Get("state")
	names := s.requestNames(ctx)
	out := proto.RequestList{Requests: []proto.RequestView{}}
	since := s.now().Add(-requestHorizon)
	for _, site := range sites {
		list, err := s.store.Requests(ctx, site, since)
		if err != nil {
			s.fail(w, err)
			return
		}
		for _, sr := range list {
			if !maySeeRequest(p, sr) {
				continue
			}
			sr = s.expireRequest(ctx, sr)
			if state != "" && sr.State != state {
				continue
			}
			out.Requests = append(out.Requests, s.requestView(p, sr, names))
		}
	}
	slices.SortFunc(out.Requests, func(a, b proto.RequestView) int { return b.Created.Compare(a.Created) })
	writeJSON(w, http.StatusOK, &out)
}

// requestFor loads request id for p, answering itself when p may not see it.
func (s *Server) requestFor(w http.ResponseWriter, r *http.Request, p *principal) (*store.Request, bool) {
	id := r.PathValue("id")
	notFound := proto.Errorf(proto.CodeNotFound, "no such request")
	if id == "" || len(id) > 64 {
		writeError(w, http.StatusNotFound, notFound)
		return nil, false
	}
	sr, err := s.store.Request(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !maySeeRequest(p, sr)) {
		writeError(w, http.StatusNotFound, notFound)
		return nil, false
	}
	if err != nil {
		s.fail(w, err)
		return nil, false
	}
	return s.expireRequest(r.Context(), sr), true
}

func (s *Server) getRequest(w http.ResponseWriter, r *http.Request, p *principal) {
	if sr, ok := s.requestFor(w, r, p); ok {
		writeJSON(w, http.StatusOK, s.requestView(p, sr, s.requestNames(r.Context())))
	}
}

// cancelRequest answers DELETE PathRequest: the technician withdraws their
// request (pending or approved and unused).
func (s *Server) cancelRequest(w http.ResponseWriter, r *http.Request, p *principal) {
	sr, ok := s.requestFor(w, r, p)
	if !ok {
		return
	}
	if sr.User != p.id() {
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "only the technician who asked withdraws a request"))
		return
	}
	_, err := s.store.UpdateRequest(r.Context(), sr.ID, func(r *store.Request) error {
		if r.State != proto.RequestPending && r.State != proto.RequestApproved {
			return errDecided
		}
		r.State = proto.RequestCanceled
		return nil
	})
	if errors.Is(err, errDecided) {
		writeError(w, http.StatusConflict, proto.Errorf(proto.CodeSessionEnded, "the request is %s", sr.State))
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	_ = s.accounts.Audit(r.Context(), p.id(), "request.cancel", sr.ID, sr.Site, map[string]string{"device": sr.Device})
	w.WriteHeader(http.StatusNoContent)
}

// decideRequest answers POST PathDecision: one of the site's admins
// approves or denies a pending request with a comment.
func (s *Server) decideRequest(w http.ResponseWriter, r *http.Request, p *principal) {
	sr, ok := s.requestFor(w, r, p)
	if !ok {
		return
	}
	if !siteAdmin(p, sr.Site) {
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "only the site's admins answer its requests"))
		return
	}
	if sr.User == p.id() {
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "you cannot answer your own request"))
		return
	}
	var d proto.Decision
	if !decodeBody(w, r, &d) {
		return
	}
	d.Comment = strings.TrimSpace(d.Comment)
	if len(d.Comment) > proto.MaxApprovalMsg {
		writeError(w, http.StatusRequestEntityTooLarge, proto.Errorf(proto.CodeTooLarge, "comment over %d bytes", proto.MaxApprovalMsg))
		return
	}
	ctx := r.Context()
	now := s.now()
	got, err := s.store.UpdateRequest(ctx, sr.ID, func(r *store.Request) error {
		if r.State != proto.RequestPending || !now.Before(r.Expires) {
			return errDecided
		}
		r.State = proto.RequestDenied
		if d.Approve {
			r.State = proto.RequestApproved
			r.Expires = now.Add(proto.ApprovalUseWithin).UTC()
		}
		r.DecidedBy, r.Decided, r.Comment = p.id(), now.UTC(), d.Comment
		return nil
	})
	if errors.Is(err, errDecided) {
		sr = s.expireRequest(ctx, sr)
		if fresh, err := s.store.Request(ctx, sr.ID); err == nil {
			sr = fresh
		}
		writeError(w, http.StatusConflict, proto.Errorf(proto.CodeExists, "the request is %s already", sr.State))
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	action, typ := "request.deny", proto.WebhookSessionDenied
	if d.Approve {
		action, typ = "request.approve", proto.WebhookSessionApproved
	}
	if err := s.accounts.Audit(ctx, p.id(), action, got.ID, got.Site, map[string]string{"user": got.User, "device": got.Device,
		"agent": got.Agent, "comment": got.Comment}); err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("approval request answered", "request", got.ID, "site", got.Site, "user", got.User, "device", got.Device, "by", p.id(), "approved", d.Approve)
	ev := proto.WebhookEvent{Type: typ, Site: got.Site, Device: got.Device, User: got.User, Request: got.ID, Reason: got.Reason,
		By: p.id(), Comment: got.Comment}
	if d.Approve {
		ev.Until = got.Expires
	}
	s.notify(ctx, ev)
	writeJSON(w, http.StatusOK, s.requestView(p, got, s.requestNames(ctx)))
}

// ExpireRequests expires the requests whose time is up (unanswered, or
// approved and unused) on every site, announcing each once, and reports
// how many. Reads expire them too; this is for the webhooks of requests
// nobody looks at. Every node of a cluster may run it: the store's atomic
// update lets only one announce a request.
func (s *Server) ExpireRequests(ctx context.Context) (int, error) {
	sites, err := s.store.Sites(ctx)
	if err != nil {
		return 0, fmt.Errorf("expire requests: %w", err)
	}
	n := 0
	since := s.now().Add(-requestHorizon)
	for _, site := range sites {
		list, err := s.store.Requests(ctx, site.ID, since)
		if err != nil {
			return n, fmt.Errorf("expire requests of %s: %w", site.ID, err)
		}
		for _, r := range list {
			before := r.State
			if got := s.expireRequest(ctx, r); got.State == proto.RequestExpired && before != proto.RequestExpired {
				n++
			}
		}
	}
	return n, nil
}

// SweepRequests runs ExpireRequests every interval until ctx ends.
func (s *Server) SweepRequests(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.ExpireRequests(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("expire approval requests", "err", err)
			}
		}
	}
}
