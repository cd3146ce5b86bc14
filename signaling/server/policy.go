package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/hub"
	"github.com/porthole-dev/porthole/signaling/store"
)

// The customer's policies (issue 18): per site, approval and time windows;
// per device, approval and the scope that goes into every grant. Signaling
// decides approval and windows before a session exists (prepareSession, the
// hub's Prepare hook on the node that holds the device's agent); the agent
// enforces the scope itself from the signed grant.

// siteAdmin reports whether p administers site for its customer.
func siteAdmin(p *principal, site string) bool {
	return site != "" && p.user.HasRole(site, store.RoleSiteAdmin)
}

// mayPolicy reports whether p may change site's policies: its site admins
// and the global admins.
func mayPolicy(p *principal, site string) bool { return p.admin() || siteAdmin(p, site) }

// sitePolicy returns site's policy (the zero policy when none is set).
func (s *Server) sitePolicy(ctx context.Context, site string) (*proto.SitePolicy, error) {
	if site == "" {
		return &proto.SitePolicy{}, nil
	}
	st, err := s.store.Site(ctx, site)
	if errors.Is(err, store.ErrNotFound) {
		return &proto.SitePolicy{}, nil
	}
	if err != nil {
		return nil, err
	}
	if st.Policy == nil {
		return &proto.SitePolicy{}, nil
	}
	return st.Policy, nil
}

// devicePolicy returns a device's policy (the zero policy when none is set).
func (s *Server) devicePolicy(ctx context.Context, agent, device string) (*proto.DevicePolicy, error) {
	d, err := s.store.Device(ctx, agent, device)
	if errors.Is(err, store.ErrNotFound) || (err == nil && d.Policy == nil) {
		return &proto.DevicePolicy{}, nil
	}
	if err != nil {
		return nil, err
	}
	return d.Policy, nil
}

// notify tells Config.Notify of ev, filling its ID and time.
func (s *Server) notify(ctx context.Context, ev proto.WebhookEvent) {
	if s.cfg.Notify == nil {
		return
	}
	ev.ID = "ev_" + strings.ToLower(rand.Text())
	if ev.Time.IsZero() {
		ev.Time = s.now().UTC()
	}
	s.cfg.Notify(context.WithoutCancel(ctx), ev)
}

// refusedByPolicy records and announces a refusal by site's policy.
func (s *Server) refusedByPolicy(ctx context.Context, site, user, agent, device string, err *proto.Error) *proto.Error {
	s.log.Info("session refused by policy", "site", site, "user", user, "agent", agent, "device", device, "code", err.Code, "err", err.Message)
	s.notify(ctx, proto.WebhookEvent{Type: proto.WebhookPolicyRefused, Site: site, Device: device, User: user, Reason: err.Message})
	return err
}

// prepareSession is the hub's Prepare hook: the time window, the approval
// (consumed here, once) and the scope of a session about to be created.
// declared is the agent's own policy for the device: the grant is held to
// it too (the agent would refuse a wider one), and its approval counts.
func (s *Server) prepareSession(ctx context.Context, user, agent, site, device string, declared *proto.AgentPolicy) (*hub.Prepared, error) {
	sp, err := s.sitePolicy(ctx, site)
	if err != nil {
		return nil, proto.Errorf(proto.CodeInternal, "site policy: %v", err)
	}
	dp, err := s.devicePolicy(ctx, agent, device)
	if err != nil {
		return nil, proto.Errorf(proto.CodeInternal, "device policy: %v", err)
	}
	var floor *proto.GrantScope
	needApproval := sp.RequireApproval || dp.RequireApproval
	if declared != nil {
		floor = &declared.GrantScope
		needApproval = needApproval || declared.RequireApproval
	}
	scope, err := dp.Scope().Narrow(floor)
	var pe *proto.Error
	if errors.As(err, &pe) {
		return nil, s.refusedByPolicy(ctx, site, user, agent, device, pe)
	} else if err != nil {
		return nil, proto.Errorf(proto.CodeInternal, "device scope: %v", err)
	}
	now := s.now()
	prep := &hub.Prepared{Scope: scope}
	open, until := sp.Open(now)
	if !open {
		return nil, s.refusedByPolicy(ctx, site, user, agent, device, sp.ClosedError(now))
	}
	if !until.IsZero() {
		// The session ends with the window (the agent enforces the
		// grant's expiry, which follows).
		prep.TTL = until.Sub(now)
	}
	if !needApproval {
		return prep, nil
	}
	r, err := s.consumeApproval(ctx, user, agent, site, device)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, s.refusedByPolicy(ctx, site, user, agent, device, proto.Errorf(proto.CodeApprovalRequired,
			"this device needs the approval of one of the site's admins: request a session with a reason and wait for their answer"))
	}
	prep.Approval = &proto.GrantApproval{Request: r.ID, By: r.DecidedBy, At: r.Decided.Unix(), Reason: r.Reason, Comment: r.Comment}
	if d := time.Duration(r.Minutes) * time.Minute; d > 0 && (prep.TTL == 0 || d < prep.TTL) {
		prep.TTL = d
	}
	return prep, nil
}

var errNotUsable = errors.New("approval not usable")

// consumeApproval marks user's newest live approval for device used and
// returns it; nil when there is none.
func (s *Server) consumeApproval(ctx context.Context, user, agent, site, device string) (*store.Request, error) {
	if site == "" || user == "" {
		return nil, nil
	}
	now := s.now()
	list, err := s.store.Requests(ctx, site, now.Add(-requestHorizon))
	if err != nil {
		return nil, proto.Errorf(proto.CodeInternal, "approval requests: %v", err)
	}
	for _, r := range slices.Backward(list) {
		if r.User != user || r.Agent != agent || r.Device != device || r.State != proto.RequestApproved {
			continue
		}
		got, err := s.store.UpdateRequest(ctx, r.ID, func(r *store.Request) error {
			if r.State != proto.RequestApproved || !now.Before(r.Expires) {
				return errNotUsable
			}
			r.State = proto.RequestUsed
			return nil
		})
		if errors.Is(err, errNotUsable) {
			s.expireRequest(ctx, r)
			continue
		}
		if err != nil {
			return nil, proto.Errorf(proto.CodeInternal, "approval request: %v", err)
		}
		s.log.Info("approval used", "request", got.ID, "user", user, "device", device, "approver", got.DecidedBy)
		return got, nil
	}
	return nil, nil
}

// getSitePolicy answers GET PathSitePolicy: members of the site (who are
// subject to it) and admins read it.
func (s *Server) getSitePolicy(w http.ResponseWriter, r *http.Request, p *principal) {
	site := r.PathValue("id")
	if !p.admin() && len(p.user.Roles[site]) == 0 {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such site"))
		return
	}
	st, err := s.store.Site(r.Context(), site)
	if err != nil {
		s.fail(w, err)
		return
	}
	sp := st.Policy
	if sp == nil {
		sp = &proto.SitePolicy{}
	}
	writeJSON(w, http.StatusOK, sp)
}

// putSitePolicy answers PUT PathSitePolicy (the site's admins, admins),
// audited with the policy before and after.
func (s *Server) putSitePolicy(w http.ResponseWriter, r *http.Request, p *principal) {
	site := r.PathValue("id")
	if !p.admin() && len(p.user.Roles[site]) == 0 {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such site"))
		return
	}
	if !mayPolicy(p, site) {
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "only the site's admins set its policy"))
		return
	}
	var sp proto.SitePolicy
	if !decodeBody(w, r, &sp) {
		return
	}
	if err := sp.Validate(); err != nil {
		writeError(w, httpStatus(err), err)
		return
	}
	sp.UpdatedBy, sp.Updated = p.id(), s.now().UTC()
	var before *proto.SitePolicy
	_, err := s.store.UpdateSite(r.Context(), site, func(st *store.Site) error {
		before, st.Policy = st.Policy, &sp
		return nil
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	if err := s.accounts.Audit(r.Context(), p.id(), "policy.site", site, site, beforeAfter(before, &sp)); err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("site policy changed", "site", site, "user", p.id(), "approval", sp.RequireApproval, "windows", len(sp.Windows))
	writeJSON(w, http.StatusOK, &sp)
}

// beforeAfter is the audit detail of a policy change.
func beforeAfter(before, after any) map[string]string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	d := map[string]string{"after": enc(after)}
	if before != nil && !isNilPtr(before) {
		d["before"] = enc(before)
	}
	return d
}

func isNilPtr(v any) bool {
	switch p := v.(type) {
	case *proto.SitePolicy:
		return p == nil
	case *proto.DevicePolicy:
		return p == nil
	}
	return false
}

// getDevicePolicy answers GET PathDevicePolicy: whoever sees the device
// reads its policy.
func (s *Server) getDevicePolicy(w http.ResponseWriter, r *http.Request, p *principal) {
	a, err := s.deviceFor(r.Context(), p, r.PathValue("id"), r.URL.Query().Get("agent"))
	if err != nil {
		writeError(w, httpStatus(asProto(err)), asProto(err))
		return
	}
	dp, err := s.devicePolicy(r.Context(), a.status.Agent, a.status.ID)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, dp)
}

// putDevicePolicy answers PUT PathDevicePolicy (the site's admins,
// admins), audited with the policy before and after.
func (s *Server) putDevicePolicy(w http.ResponseWriter, r *http.Request, p *principal) {
	a, err := s.deviceFor(r.Context(), p, r.PathValue("id"), r.URL.Query().Get("agent"))
	if err != nil {
		writeError(w, httpStatus(asProto(err)), asProto(err))
		return
	}
	if !mayPolicy(p, a.site) {
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "only the site's admins set a device's policy"))
		return
	}
	var dp proto.DevicePolicy
	if !decodeBody(w, r, &dp) {
		return
	}
	if err := dp.Validate(); err != nil {
		writeError(w, httpStatus(err), err)
		return
	}
	dp.UpdatedBy, dp.Updated = p.id(), s.now().UTC()
	var before *proto.DevicePolicy
	_, err = s.store.UpdateDevice(r.Context(), a.status.Agent, a.status.ID, func(d *store.Device) error {
		before, d.Policy = d.Policy, &dp
		return nil
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	if err := s.accounts.Audit(r.Context(), p.id(), "policy.device", a.status.ID, a.site,
		mergeDetail(beforeAfter(before, &dp), map[string]string{"agent": a.status.Agent})); err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("device policy changed", "device", a.status.ID, "agent", a.status.Agent, "user", p.id(), "approval", dp.RequireApproval, "readOnly", dp.ReadOnly)
	writeJSON(w, http.StatusOK, &dp)
}

func mergeDetail(a, b map[string]string) map[string]string {
	for k, v := range b {
		a[k] = v
	}
	return a
}
