package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/inventory"
	"github.com/porthole-dev/porthole/signaling/store"
)

// The inventory API: a configurer sees what the site's agents discovered,
// asks them to scan, adopts a candidate with one click (the identity the
// scan saw is recorded and checked before every session), renames,
// relaxes or removes an adopted device; every change reaches the agent at
// once (cluster.Sessions.PushInventory) with no restart and no dropped session, and is
// written to the admin audit log.
//
// In a cluster the push and the scan request reach the agent on whichever
// node holds it (cluster.Sessions); an agent that is offline gets its
// inventory after its next hello, on any node.

// inventoryHooks connect the hub to package inventory.
type inventoryHooks struct{ s *Server }

func (h inventoryHooks) Declared(ctx context.Context, agent string, devs []proto.Device) error {
	if err := h.s.inventory.Declared(ctx, agent, devs); err != nil {
		return err
	}
	return h.s.inventory.Forget(ctx, agent, devs)
}

func (h inventoryHooks) Inventory(ctx context.Context, agent string) (*proto.Inventory, error) {
	return h.s.inventory.Inventory(ctx, agent)
}

func (h inventoryHooks) Applied(ctx context.Context, agent string, a *proto.InventoryApplied) error {
	return h.s.inventory.Applied(ctx, agent, a)
}

func (h inventoryHooks) Report(ctx context.Context, agent string, r *proto.DiscoveryReport) error {
	_, moved, err := h.s.inventory.Report(ctx, agent, r)
	if err != nil {
		return err
	}
	if len(moved) > 0 {
		site := h.s.agentSite(agent)
		for _, id := range moved {
			if err := h.s.accounts.Audit(ctx, "agent:"+agent, "device.moved", id, site, map[string]string{"agent": agent}); err != nil {
				h.s.log.Warn("cannot audit a device's move", "err", err)
			}
		}
		h.s.hub.PushInventory(ctx, agent)
	}
	return nil
}

// allDevices is every device p could see: those connected agents declare
// (the hub, or the cluster) merged with the stored inventory, which lists
// an offline agent's devices offline with when they were last seen.
func (s *Server) allDevices(ctx context.Context) ([]proto.DeviceStatus, error) {
	live := s.sessions.Devices(ctx)
	agents, err := s.store.Agents(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(agents))
	for _, a := range agents {
		ids = append(ids, a.ID)
	}
	return s.inventory.List(ctx, ids, live)
}

// siteConfigurer checks p may configure site (admins, configurers of it),
// answering itself if not.
func (s *Server) siteConfigurer(w http.ResponseWriter, r *http.Request, p *principal, site string) bool {
	if !proto.ValidID(site) {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such site"))
		return false
	}
	if _, err := s.store.Site(r.Context(), site); err != nil {
		if !p.admin() && len(p.user.Roles[site]) == 0 {
			err = store.ErrNotFound // another site does not exist for p
		}
		s.fail(w, err)
		return false
	}
	if p.admin() || p.user.HasRole(site, store.RoleConfigurer) {
		return true
	}
	if len(p.user.Roles[site]) == 0 {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such site"))
		return false
	}
	s.refuse(r, "not a configurer of the site", "user", p.id(), "site", site)
	writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "only configurers of the site may see and adopt discovered devices"))
	return false
}

// siteAgents lists the agents assigned to site.
func (s *Server) siteAgents(ctx context.Context, site string) ([]*store.Agent, error) {
	agents, err := s.store.Agents(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(agents, func(a *store.Agent) bool { return a.Site != site }), nil
}

// listDiscovered answers GET /v1/sites/{id}/discovered.
func (s *Server) listDiscovered(w http.ResponseWriter, r *http.Request, p *principal) {
	site := r.PathValue("id")
	if !s.siteConfigurer(w, r, p, site) {
		return
	}
	ctx := r.Context()
	agents, err := s.siteAgents(ctx, site)
	if err != nil {
		s.fail(w, err)
		return
	}
	online := map[string]bool{}
	for _, a := range s.sessions.OnlineAgents(ctx) {
		online[a] = true
	}
	out := proto.DiscoveredList{Agents: []proto.AgentScan{}}
	for _, a := range agents {
		v := proto.AgentScan{Agent: a.ID, AgentName: a.Name, Online: online[a.ID], Candidates: []proto.DiscoveredCandidate{}}
		scan, err := s.store.Discovery(ctx, a.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			s.fail(w, err)
			return
		default:
			devs, err := s.store.Devices(ctx, a.ID)
			if err != nil {
				s.fail(w, err)
				return
			}
			adopted := map[string]string{}
			for _, d := range devs {
				if d.Adopted {
					adopted[d.Addr] = d.ID
				}
			}
			v.Scan, v.Scope, v.Started, v.Finished, v.Probes, v.Truncated = scan.Scan, scan.Scope, scan.Started, scan.Finished, scan.Probes, scan.Truncated
			for _, c := range scan.Devices {
				v.Candidates = append(v.Candidates, proto.DiscoveredCandidate{Discovered: c, Adopted: adopted[c.Addr]})
			}
		}
		out.Agents = append(out.Agents, v)
	}
	writeJSON(w, http.StatusOK, &out)
}

// startDiscovery answers POST /v1/sites/{id}/discover.
func (s *Server) startDiscovery(w http.ResponseWriter, r *http.Request, p *principal) {
	site := r.PathValue("id")
	if !s.siteConfigurer(w, r, p, site) {
		return
	}
	agents, err := s.siteAgents(r.Context(), site)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := proto.DiscoverStarted{Asked: []string{}}
	for _, a := range agents {
		if s.sessions.RunDiscovery(r.Context(), a.ID, "asked by "+p.user.Name) {
			out.Asked = append(out.Asked, a.ID)
		} else {
			out.Offline = append(out.Offline, a.ID)
		}
	}
	s.log.Info("discovery asked", "user", p.id(), "site", site, "agents", len(out.Asked), "offline", len(out.Offline))
	writeJSON(w, http.StatusAccepted, &out)
}

// adoptDevice answers POST /v1/devices/adopt.
func (s *Server) adoptDevice(w http.ResponseWriter, r *http.Request, p *principal) {
	var req proto.Adopt
	if !decodeBody(w, r, &req) {
		return
	}
	ctx := r.Context()
	if !proto.ValidID(req.Agent) {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "malformed agent id"))
		return
	}
	ag, err := s.store.Agent(ctx, req.Agent)
	if err != nil || ag.Site == "" {
		// An agent of no site, or none at all: nothing to adopt into.
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such agent on a site"))
		return
	}
	if !s.siteConfigurer(w, r, p, ag.Site) {
		return
	}
	if len(req.Name) > proto.MaxText || req.Name == "" {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "give the device a name (at most %d bytes)", proto.MaxText))
		return
	}
	d, err := s.inventory.Adopt(ctx, inventory.Adoption{Agent: req.Agent, Addr: req.Addr, ID: req.ID, Name: req.Name,
		Services: req.Services, Type: req.Type, Relaxed: req.Relaxed, By: p.id()})
	if err != nil {
		s.fail(w, err)
		return
	}
	detail := map[string]string{"agent": req.Agent, "addr": d.Addr, "mac": d.MAC, "serial": d.Serial}
	if d.Relaxed {
		detail["relaxed"] = "true"
	}
	if err := s.accounts.Audit(ctx, p.id(), "device.adopt", d.ID, ag.Site, detail); err != nil {
		s.fail(w, err)
		return
	}
	s.sessions.PushInventory(ctx, req.Agent)
	a, err := s.decide(ctx, p, proto.DeviceStatus{Device: proto.Device{ID: d.ID, Name: d.Name, Services: d.Services}, Agent: d.Agent,
		Adopted: true, Type: d.Type, Model: d.Model, Serial: d.Serial}, ag.Site, nil)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, a.view())
}

// deleteDevice answers DELETE /v1/devices/{id}: an adopted device is
// forgotten and its agent stops serving it (its live sessions end).
func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request, p *principal) {
	a, ok := s.configurableDevice(w, r, p)
	if !ok {
		return
	}
	ctx := r.Context()
	if err := s.inventory.Remove(ctx, a.status.Agent, a.status.ID); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.accounts.Audit(ctx, p.id(), "device.remove", a.status.ID, a.site, map[string]string{"agent": a.status.Agent}); err != nil {
		s.fail(w, err)
		return
	}
	s.sessions.PushInventory(ctx, a.status.Agent)
	w.WriteHeader(http.StatusNoContent)
}

// configurableDevice finds the device of the request's {id} and ?agent=
// that p may configure, answering itself if there is none.
func (s *Server) configurableDevice(w http.ResponseWriter, r *http.Request, p *principal) (*access, bool) {
	id := r.PathValue("id")
	if !proto.ValidID(id) {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such device"))
		return nil, false
	}
	agent := r.URL.Query().Get("agent")
	if agent != "" && !proto.ValidID(agent) {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "malformed agent id"))
		return nil, false
	}
	a, err := s.deviceFor(r.Context(), p, id, agent)
	if err != nil {
		s.refuse(r, "device not visible", "user", p.id(), "device", id)
		writeError(w, httpStatus(asProto(err)), asProto(err))
		return nil, false
	}
	if !a.canConfigure {
		s.refuse(r, "not a configurer of the device's site", "user", p.id(), "device", id)
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "only configurers of the site may change this device"))
		return nil, false
	}
	return a, true
}

// editAdopted applies the adopted-only fields of a PATCH.
func (s *Server) editAdopted(ctx context.Context, p *principal, a *access, req *proto.DeviceUpdate) error {
	if req.Name == nil && req.Relaxed == nil {
		return nil
	}
	if req.Name != nil && (*req.Name == "" || len(*req.Name) > proto.MaxText) {
		return proto.Errorf(proto.CodeBadMessage, "give the device a name (at most %d bytes)", proto.MaxText)
	}
	_, err := s.inventory.Edit(ctx, a.status.Agent, a.status.ID, func(d *store.Device) error {
		if req.Name != nil {
			d.Name = *req.Name
		}
		if req.Relaxed != nil {
			d.Relaxed = *req.Relaxed
		}
		d.UpdatedBy = p.id()
		return nil
	})
	if err != nil {
		return err
	}
	detail := map[string]string{"agent": a.status.Agent}
	if req.Name != nil {
		detail["name"] = *req.Name
	}
	if req.Relaxed != nil {
		detail["relaxed"] = strconv.FormatBool(*req.Relaxed)
	}
	if err := s.accounts.Audit(ctx, p.id(), "device.edit", a.status.ID, a.site, detail); err != nil {
		return err
	}
	s.sessions.PushInventory(ctx, a.status.Agent)
	return nil
}
