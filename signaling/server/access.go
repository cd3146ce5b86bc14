package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/store"
)

// asProto turns store and accounts errors into coded API errors.
func asProto(err error) error {
	var pe *proto.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, store.ErrNotFound):
		return proto.Errorf(proto.CodeNotFound, "not found")
	case errors.Is(err, store.ErrExists):
		return proto.Errorf(proto.CodeExists, "already exists")
	case errors.Is(err, accounts.ErrInvalid), errors.Is(err, store.ErrConflict):
		return proto.Errorf(proto.CodeBadMessage, "%v", err)
	}
	return proto.Errorf(proto.CodeInternal, "%v", err)
}

func accountsChange(newPassword string) accounts.UserChange {
	return accounts.UserChange{Password: &newPassword}
}

func accountsResetTOTP() accounts.UserChange { return accounts.UserChange{ResetTOTP: true} }

// access is what a caller may do with one device.
type access struct {
	status        proto.DeviceStatus
	site          string
	enabled       bool
	visible       bool
	canOpen       bool // role and setting allow it (online or not)
	canConfigure  bool
	needsApproval bool
	canAdminister bool
	windowClosed  bool
	nextWindow    time.Time
	timeZone      string
}

func (a *access) view() proto.DeviceView {
	return proto.DeviceView{DeviceStatus: a.status, Site: a.site, Enabled: a.enabled,
		CanOpen: a.canOpen && a.status.Online, CanConfigure: a.canConfigure, NeedsApproval: a.needsApproval, CanAdminister: a.canAdminister,
		WindowClosed: a.windowClosed, NextWindow: a.nextWindow, TimeZone: a.timeZone}
}

// agentSites maps agent ID → site from the store.
func (s *Server) agentSites(ctx context.Context) (map[string]string, error) {
	agents, err := s.store.Agents(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(agents))
	for _, a := range agents {
		m[a.ID] = a.Site
	}
	return m, nil
}

// decide works out p's access to one declared device.
func (s *Server) decide(ctx context.Context, p *principal, d proto.DeviceStatus, site string, sp *proto.SitePolicy) (*access, error) {
	a := &access{status: d, site: site}
	// The agent's own policy for the device counts as much as the site's.
	a.needsApproval = sp != nil && sp.RequireApproval || d.Policy != nil && d.Policy.RequireApproval
	a.canAdminister = siteAdmin(p, site)
	if sp != nil && len(sp.Windows) > 0 {
		now := s.now()
		if open, _ := sp.Open(now); !open {
			a.windowClosed = true
			a.nextWindow, _ = sp.NextWindow(now)
			a.timeZone = sp.TimeZone
		}
	}
	settings, err := s.store.Device(ctx, d.Agent, d.ID)
	switch {
	case err == nil:
		a.enabled = settings.Enabled
		a.needsApproval = a.needsApproval || settings.Policy != nil && settings.Policy.RequireApproval
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	member := site != "" && len(p.user.Roles[site]) > 0
	a.visible = p.admin() || member
	a.canConfigure = p.admin() || (site != "" && p.user.HasRole(site, store.RoleConfigurer))
	a.canOpen = p.dev || (site != "" && p.user.HasRole(site, store.RoleUser) && a.enabled)
	return a, nil
}

// devicesFor lists the devices p may see, with what p may do to each.
func (s *Server) devicesFor(ctx context.Context, p *principal) ([]*access, error) {
	sites, err := s.agentSites(ctx)
	if err != nil {
		return nil, err
	}
	all, err := s.allDevices(ctx)
	if err != nil {
		return nil, err
	}
	policies := map[string]*proto.SitePolicy{}
	if list, err := s.store.Sites(ctx); err == nil {
		for _, st := range list {
			policies[st.ID] = st.Policy
		}
	}
	var out []*access
	for _, d := range all {
		a, err := s.decide(ctx, p, d, sites[d.Agent], policies[sites[d.Agent]])
		if err != nil {
			return nil, err
		}
		if a.visible {
			out = append(out, a)
		}
	}
	return out, nil
}

// deviceFor returns p's access to device id (on agent, when agent is not
// empty), or not_found when p may not see it (another site's device does
// not exist for p). Device IDs are scoped by agent and site: when p can see
// several devices with this ID (an admin, or a user of several sites), the
// caller must name the agent.
func (s *Server) deviceFor(ctx context.Context, p *principal, id, agent string) (*access, error) {
	all, err := s.allDevices(ctx)
	if err != nil {
		return nil, err
	}
	var found []*access
	for _, d := range all {
		if d.ID != id || (agent != "" && d.Agent != agent) {
			continue
		}
		site := ""
		if ag, err := s.store.Agent(ctx, d.Agent); err == nil {
			site = ag.Site
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		sp, err := s.sitePolicy(ctx, site)
		if err != nil {
			return nil, err
		}
		a, err := s.decide(ctx, p, d, site, sp)
		if err != nil {
			return nil, err
		}
		if a.visible {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return nil, proto.Errorf(proto.CodeNotFound, "no such device")
	case 1:
		return found[0], nil
	}
	agents := make([]string, len(found))
	for i, a := range found {
		agents[i] = a.status.Agent + " (site " + a.site + ")"
	}
	return nil, proto.Errorf(proto.CodeBadMessage, "device %s is declared by several agents: %s; name the agent", id, strings.Join(agents, ", "))
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, p *principal) {
	list, err := s.devicesFor(r.Context(), p)
	if err != nil {
		writeError(w, http.StatusInternalServerError, asProto(err))
		return
	}
	out := proto.DeviceList{Devices: make([]proto.DeviceStatus, 0, len(list))}
	for _, a := range list {
		out.Devices = append(out.Devices, a.status)
	}
	writeJSON(w, http.StatusOK, &out)
}

// overview answers GET /v1/overview: the caller's sites and devices.
func (s *Server) overview(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	list, err := s.devicesFor(ctx, p)
	if err != nil {
		writeError(w, http.StatusInternalServerError, asProto(err))
		return
	}
	sites, err := s.store.Sites(ctx)
	if err != nil {
		writeError(w, http.StatusInternalServerError, asProto(err))
		return
	}
	bySite := map[string]*proto.SiteView{}
	var order []string
	add := func(id, name string) *proto.SiteView {
		if v := bySite[id]; v != nil {
			return v
		}
		v := &proto.SiteView{ID: id, Name: name, Devices: []proto.DeviceView{}}
		for _, role := range p.user.Roles[id] {
			v.Roles = append(v.Roles, string(role))
		}
		bySite[id] = v
		order = append(order, id)
		return v
	}
	for _, site := range sites {
		if p.admin() || len(p.user.Roles[site.ID]) > 0 {
			add(site.ID, site.Name)
		}
	}
	for _, a := range list {
		v := bySite[a.site]
		if v == nil {
			v = add(a.site, "Unassigned agents")
		}
		v.Devices = append(v.Devices, a.view())
	}
	out := proto.Overview{User: *me(p.user), Sites: make([]proto.SiteView, 0, len(order))}
	sort.Strings(order)
	for _, id := range order {
		v := bySite[id]
		sort.Slice(v.Devices, func(i, j int) bool { return v.Devices[i].ID < v.Devices[j].ID })
		out.Sites = append(out.Sites, *v)
	}
	writeJSON(w, http.StatusOK, &out)
}

// patchDevice answers PATCH /v1/devices/{id}: configurers (and admins)
// turn remote access on or off, and rename or relax an adopted device.
func (s *Server) patchDevice(w http.ResponseWriter, r *http.Request, p *principal) {
	var req proto.DeviceUpdate
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Enabled == nil && req.Name == nil && req.Relaxed == nil {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "nothing to change"))
		return
	}
	a, ok := s.configurableDevice(w, r, p)
	if !ok {
		return
	}
	ctx := r.Context()
	id := a.status.ID
	if err := s.editAdopted(ctx, p, a, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.Enabled != nil {
		if _, err := s.accounts.SetDeviceEnabled(ctx, p.id(), a.status.Agent, id, a.site, *req.Enabled); err != nil {
			writeError(w, httpStatus(asProto(err)), asProto(err))
			return
		}
		s.log.Info("device setting changed", "user", p.id(), "device", id, "agent", a.status.Agent, "enabled", *req.Enabled)
	}
	a, err := s.deviceFor(ctx, p, id, a.status.Agent)
	if err != nil {
		writeError(w, httpStatus(asProto(err)), asProto(err))
		return
	}
	writeJSON(w, http.StatusOK, a.view())
}

// mayOpen checks p may open a session on device id, answering itself if
// not. It returns the agent that must still declare the device.
func (s *Server) mayOpen(w http.ResponseWriter, r *http.Request, p *principal, id, agent string) (string, bool) {
	a, err := s.deviceFor(r.Context(), p, id, agent)
	if err != nil {
		s.refuse(r, "device not visible", "user", p.id(), "device", id)
		writeError(w, httpStatus(asProto(err)), asProto(err))
		return "", false
	}
	if !a.canOpen {
		msg := "you may not open devices of this site"
		if slices.Contains(p.user.Roles[a.site], store.RoleUser) && !a.enabled {
			msg = "remote access is not enabled for this device"
		}
		s.refuse(r, msg, "user", p.id(), "device", id)
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "%s", msg))
		return "", false
	}
	return a.status.Agent, true
}

// agentSite is the site agent is assigned to ("" for none, or when the store
// cannot say): the scope in which its device IDs must be unique
// (hub.Options.AgentSite).
func (s *Server) agentSite(agent string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := s.store.Agent(ctx, agent)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("agent site unknown", "agent", agent, "err", err)
		}
		return ""
	}
	return a.Site
}

// siteName is the name of site ("" when the store cannot say), shown in
// the session window's toolbar (hub.Options.SiteName).
func (s *Server) siteName(site string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.store.Site(ctx, site)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("site name unknown", "site", site, "err", err)
		}
		return ""
	}
	return st.Name
}
