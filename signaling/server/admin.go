package server

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/accounts"
	"github.com/porthole-dev/porthole/signaling/store"
)

// adminOnly wraps an administration endpoint: callers that are not admins
// are refused with 403 (the admin API's existence is no secret).
func (s *Server) adminOnly(scope string, h func(http.ResponseWriter, *http.Request, *principal)) http.HandlerFunc {
	return s.authed(scope, func(w http.ResponseWriter, r *http.Request, p *principal) {
		if !p.admin() {
			s.refuse(r, "not an admin", "user", p.id())
			writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "administrators only"))
			return
		}
		h(w, r, p)
	})
}

func userView(u *store.User) proto.UserView {
	return proto.UserView{ID: u.ID, Name: u.Name, DisplayName: u.DisplayName, Admin: u.Admin,
		Disabled: u.Disabled, TOTP: u.TOTPSecret != "", Roles: roleNames(u.Roles),
		SSO: u.SSO != "", Invited: u.SSO == "" && u.PasswordHash == ""}
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	err = asProto(err)
	writeError(w, httpStatus(err), err)
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, _ *principal) {
	users, err := s.store.Users(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	out := proto.UserList{Users: make([]proto.UserView, 0, len(users))}
	for _, u := range users {
		out.Users = append(out.Users, userView(u))
	}
	writeJSON(w, http.StatusOK, &out)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, p *principal) {
	var req proto.NewUser
	if !decodeBody(w, r, &req) {
		return
	}
	u, err := s.accounts.CreateUser(r.Context(), p.id(), accounts.NewUser{Name: req.Name, DisplayName: req.DisplayName, Password: req.Password, Admin: req.Admin,
		NoPassword: req.Password == ""}) // no password: an invitation link gives one (signin.go)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("user created", "user", u.ID, "name", u.Name, "by", p.id())
	writeJSON(w, http.StatusCreated, userView(u))
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request, p *principal) {
	var req proto.UserUpdate
	if !decodeBody(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	if id == p.id() && ((req.Admin != nil && !*req.Admin) || (req.Disabled != nil && *req.Disabled)) {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "admins cannot demote or disable themselves"))
		return
	}
	u, err := s.accounts.UpdateUser(r.Context(), p.id(), id, accounts.UserChange{
		DisplayName: req.DisplayName, Admin: req.Admin, Disabled: req.Disabled, Password: req.Password, ResetTOTP: req.ResetTOTP,
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, userView(u))
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	if id == p.id() {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "admins cannot delete themselves"))
		return
	}
	if err := s.accounts.DeleteUser(r.Context(), p.id(), id); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) setRoles(w http.ResponseWriter, r *http.Request, p *principal) {
	var req proto.RoleUpdate
	if !decodeBody(w, r, &req) {
		return
	}
	u, err := s.accounts.SetRoles(r.Context(), p.id(), r.PathValue("id"), r.PathValue("site"), req.Roles)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("roles changed", "user", u.ID, "site", r.PathValue("site"), "roles", req.Roles, "by", p.id())
	writeJSON(w, http.StatusOK, userView(u))
}

// listSites answers GET /v1/sites: every site for admins, the caller's own
// for everybody else.
func (s *Server) listSites(w http.ResponseWriter, r *http.Request, p *principal) {
	sites, err := s.store.Sites(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	out := proto.SiteList{Sites: []proto.SiteView{}}
	for _, site := range sites {
		if !p.admin() && len(p.user.Roles[site.ID]) == 0 {
			continue
		}
		v := proto.SiteView{ID: site.ID, Name: site.Name}
		for _, role := range p.user.Roles[site.ID] {
			v.Roles = append(v.Roles, string(role))
		}
		out.Sites = append(out.Sites, v)
	}
	writeJSON(w, http.StatusOK, &out)
}

func (s *Server) createSite(w http.ResponseWriter, r *http.Request, p *principal) {
	if !p.admin() {
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "administrators only"))
		return
	}
	var req proto.NewSite
	if !decodeBody(w, r, &req) {
		return
	}
	site, err := s.accounts.CreateSite(r.Context(), p.id(), req.ID, req.Name)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, &proto.SiteView{ID: site.ID, Name: site.Name})
}

func (s *Server) deleteSite(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.accounts.DeleteSite(r.Context(), p.id(), r.PathValue("id")); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listAgents answers GET /v1/agents: every agent known to the store or
// connected now.
func (s *Server) listAgents(w http.ResponseWriter, r *http.Request, _ *principal) {
	stored, err := s.store.Agents(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	views := map[string]*proto.AgentView{}
	var order []string
	get := func(id string) *proto.AgentView {
		if v := views[id]; v != nil {
			return v
		}
		v := &proto.AgentView{ID: id}
		views[id] = v
		order = append(order, id)
		return v
	}
	for _, a := range stored {
		v := get(a.ID)
		v.Name, v.Site = a.Name, a.Site
	}
	for _, d := range s.sessions.Devices(r.Context()) {
		v := get(d.Agent)
		v.Devices++
		v.Online = v.Online || d.Online
	}
	for _, id := range s.sessions.OnlineAgents(r.Context()) {
		get(id).Online = true
	}
	out := proto.AgentList{Agents: make([]proto.AgentView, 0, len(order))}
	slices.Sort(order)
	for _, id := range order {
		out.Agents = append(out.Agents, *views[id])
	}
	writeJSON(w, http.StatusOK, &out)
}

func (s *Server) putAgent(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	if !proto.ValidID(id) {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "no such agent"))
		return
	}
	var req proto.AgentUpdate
	if !decodeBody(w, r, &req) {
		return
	}
	a, err := s.accounts.AssignAgent(r.Context(), p.id(), id, req.Name, req.Site)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, &proto.AgentView{ID: a.ID, Name: a.Name, Site: a.Site})
}

// maxAuditScan bounds how many pages of the admin log one site admin's
// request reads to find their sites' entries.
const maxAuditScan = 50

// listAudit answers GET /v1/audit?after=N&limit=M: admins read the whole
// admin log, site admins the entries of their sites (policy changes,
// requests and answers, terminations, roles).
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p *principal) {
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	mine := func(*store.AuditEntry) bool { return true }
	if !p.admin() {
		var sites []string
		for site, roles := range p.user.Roles {
			if slices.Contains(roles, store.RoleSiteAdmin) {
				sites = append(sites, site)
			}
		}
		if len(sites) == 0 {
			s.refuse(r, "not an admin", "user", p.id())
			writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "administrators only"))
			return
		}
		mine = func(e *store.AuditEntry) bool { return slices.Contains(sites, e.Site) }
	}
	var entries []*store.AuditEntry
	pageSize := 1000
	if p.admin() {
		pageSize = limit
	}
	for range maxAuditScan {
		page, err := s.store.Audit(r.Context(), accounts.AuditStream, after, pageSize)
		if err != nil {
			s.fail(w, err)
			return
		}
		for _, e := range page {
			after = e.Seq
			if mine(e) && len(entries) < limit {
				entries = append(entries, e)
			}
		}
		if len(page) < pageSize || len(entries) >= limit || p.admin() {
			break
		}
	}
	out := proto.AuditList{Entries: make([]proto.AuditEntry, 0, len(entries))}
	for _, e := range entries {
		out.Entries = append(out.Entries, proto.AuditEntry{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action,
			Target: e.Target, Site: e.Site, Detail: e.Detail, Prev: e.Prev, Hash: e.Hash})
	}
	writeJSON(w, http.StatusOK, &out)
}
