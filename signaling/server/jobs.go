package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/auditlog"
	"github.com/porthole-dev/porthole/signaling/jobs"
	"github.com/porthole-dev/porthole/signaling/store"
)

// The Jobs API: sessions as audited jobs (package jobs records them).

func (s *Server) jobRoutes(mux *http.ServeMux) {
	type methods = map[string]http.HandlerFunc
	get := func(h func(http.ResponseWriter, *http.Request, *principal)) http.HandlerFunc {
		return s.authed(proto.ScopeRead, h)
	}
	mux.Handle(proto.PathJobs, s.api(methods{"GET": get(s.listJobs)}))
	mux.Handle(proto.PathJob, s.api(methods{"GET": get(s.getJob)}))
	mux.Handle(proto.PathJobLog, s.api(methods{"GET": get(s.getJobLog)}))
	mux.Handle(proto.PathJobExport, s.api(methods{"GET": get(s.exportJob)}))
	mux.Handle(proto.PathJobRecording, s.api(methods{"GET": get(s.getJobRecording)}))
	mux.Handle(proto.PathJobVerify, s.api(methods{"GET": get(s.verifyJob)}))
	mux.Handle(proto.PathJobTerminate, s.api(methods{"POST": s.authed(proto.ScopeSessions, s.terminateJob)}))
	mux.Handle(proto.PathAuditVerify, s.api(methods{"GET": s.adminOnly(proto.ScopeRead, s.verifyStream)}))
}

// maySeeJob: admins see every job; a user sees their own and, as a
// configurer or a site admin, those of their sites.
func maySeeJob(p *principal, j *store.Job) bool {
	return p.admin() || j.User == p.id() || (j.Site != "" && p.user.HasRole(j.Site, store.RoleConfigurer)) || siteAdmin(p, j.Site)
}

// jobView presents j as of now: a job signaling never saw end (it
// restarted meanwhile) is over once its time is up.
func (s *Server) jobView(j *store.Job, names jobNames) proto.JobView {
	now := s.now()
	v := proto.JobView{ID: j.ID, Type: j.Type, User: j.User, UserName: names.users[j.User], Agent: j.Agent, Device: j.Device,
		DeviceName: j.DeviceName, Site: j.Site, SiteName: names.sites[j.Site], EndedByName: names.users[j.EndedBy], State: string(j.State), Path: j.Path, Start: j.Created, End: j.Ended, Expires: j.Expires,
		EndReason: j.EndReason, EndMessage: j.EndMessage, EndedBy: j.EndedBy, Requests: j.Requests, TCPStreams: j.TCP,
		ReqBytes: j.ReqBytes, RespBytes: j.RespBytes, Bytes: j.ReqBytes + j.RespBytes, LogEntries: j.LogSeq,
		Changes: j.Changes, Refused: j.Refused}
	if a := j.Approval; a != nil {
		v.ApprovalRequest, v.ApprovedBy, v.ApprovedByName, v.ApprovedAt = a.Request, a.By, names.users[a.By], time.Unix(a.At, 0).UTC()
		v.ApprovalReason, v.ApprovalComment = a.Reason, a.Comment
	}
	if j.State != store.JobEnded && !now.Before(j.Expires) {
		v.State, v.End, v.EndReason = string(store.JobEnded), j.Expires, string(proto.EndExpired)
	}
	v.Live = v.State != string(store.JobEnded) && s.hub.SessionLive(j.ID)
	end := v.End
	if end.IsZero() {
		end = now
	}
	v.DurationMS = end.Sub(j.Created).Milliseconds()
	v.Relays = j.Relays
	for _, t := range j.States {
		v.States = append(v.States, proto.JobTransition{State: string(t.State), Time: t.Time, Detail: t.Detail})
	}
	return v
}

// jobNames are the names people read in a job instead of IDs.
type jobNames struct{ users, sites map[string]string }

func (s *Server) jobNames(ctx context.Context) jobNames {
	n := jobNames{users: map[string]string{}, sites: map[string]string{}}
	if users, err := s.store.Users(ctx); err == nil {
		for _, u := range users {
			n.users[u.ID] = u.Name
		}
	}
	if sites, err := s.store.Sites(ctx); err == nil {
		for _, site := range sites {
			n.sites[site.ID] = site.Name
		}
	}
	return n
}

// maxJobList bounds one page of the job list.
const maxJobList = 500

// listJobs answers GET PathJobs with filters.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, p *principal) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > maxJobList {
		limit = maxJobList
	}
	parseTime := func(k string) (time.Time, bool) {
		v := q.Get(k)
		if v == "" {
			return time.Time{}, true
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "%s: want RFC 3339 time", k))
			return time.Time{}, false
		}
		return t, true
	}
	from, ok := parseTime("from")
	if !ok {
		return
	}
	to, ok := parseTime("to")
	if !ok {
		return
	}
	parseDur := func(k string) (time.Duration, bool) {
		v := q.Get(k)
		if v == "" {
			return 0, true
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "%s: want a duration such as 5m", k))
			return 0, false
		}
		return d, true
	}
	minDur, ok := parseDur("minDuration")
	if !ok {
		return
	}
	maxDur, ok := parseDur("maxDuration")
	if !ok {
		return
	}
	ctx := r.Context()
	names := s.jobNames(ctx)
	before := time.Time{}
	if !to.IsZero() {
		before = to.Add(time.Nanosecond)
	}
	out := proto.JobList{Jobs: []proto.JobView{}}
	// Scan newest first in pages until limit matches are found or the
	// jobs are older than from.
	const page = 500
	for len(out.Jobs) < limit {
		list, err := s.store.Jobs(ctx, before, page)
		if err != nil {
			s.fail(w, err)
			return
		}
		for _, j := range list {
			before = j.Created
			if !from.IsZero() && j.Created.Before(from) {
				list = nil
				break
			}
			if !maySeeJob(p, j) {
				continue
			}
			v := s.jobView(j, names)
			if !matchJob(q, &v, minDur, maxDur) {
				continue
			}
			out.Jobs = append(out.Jobs, v)
			if len(out.Jobs) >= limit {
				break
			}
		}
		if len(list) < page {
			break
		}
	}
	writeJSON(w, http.StatusOK, &out)
}

func matchJob(q map[string][]string, v *proto.JobView, minDur, maxDur time.Duration) bool {
	eq := func(k, val string, alt ...string) bool {
		want := ""
		if vs := q[k]; len(vs) > 0 {
			want = vs[0]
		}
		if want == "" || strings.EqualFold(want, val) {
			return true
		}
		for _, a := range alt {
			if strings.EqualFold(want, a) {
				return true
			}
		}
		return false
	}
	d := time.Duration(v.DurationMS) * time.Millisecond
	return eq("user", v.User, v.UserName) && eq("device", v.Device, v.DeviceName) && eq("site", v.Site, v.SiteName) &&
		eq("path", v.Path) && eq("reason", v.EndReason) && eq("state", v.State) && eq("type", v.Type) &&
		(minDur == 0 || d >= minDur) && (maxDur == 0 || d <= maxDur)
}

// jobFor loads job id for p, answering itself when p may not see it.
func (s *Server) jobFor(w http.ResponseWriter, r *http.Request, p *principal) (*store.Job, bool) {
	id := r.PathValue("id")
	notFound := proto.Errorf(proto.CodeNotFound, "no such job")
	if !proto.ValidSessionID(id) {
		writeError(w, http.StatusNotFound, notFound)
		return nil, false
	}
	j, err := s.recorder.Job(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !maySeeJob(p, j)) {
		writeError(w, http.StatusNotFound, notFound)
		return nil, false
	}
	if err != nil {
		s.fail(w, err)
		return nil, false
	}
	return j, true
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, p *principal) {
	if j, ok := s.jobFor(w, r, p); ok {
		writeJSON(w, http.StatusOK, s.jobView(j, s.jobNames(r.Context())))
	}
}

// maxLogPage bounds one page of a job's log.
const maxLogPage = 5000

func (s *Server) getJobLog(w http.ResponseWriter, r *http.Request, p *principal) {
	j, ok := s.jobFor(w, r, p)
	if !ok {
		return
	}
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > maxLogPage {
		limit = maxLogPage
	}
	entries, err := s.store.Audit(r.Context(), store.SessionStream(j.ID), after, limit+1)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := proto.JobLog{Job: j.ID, Entries: []proto.LoggedAccess{}}
	if len(entries) > limit {
		entries, out.More = entries[:limit], true
	}
	for _, e := range entries {
		out.Entries = append(out.Entries, proto.LoggedAccess{AccessEntry: jobs.FromAudit(e), Prev: e.Prev, Hash: e.Hash})
	}
	writeJSON(w, http.StatusOK, &out)
}

// getJobRecording answers GET PathJobRecording: the job's terminal
// recording as asciicast v2, to whoever may see the job's log.
func (s *Server) getJobRecording(w http.ResponseWriter, r *http.Request, p *principal) {
	j, ok := s.jobFor(w, r, p)
	if !ok {
		return
	}
	b, err := s.store.Recording(r.Context(), j.ID)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, proto.Errorf(proto.CodeNotFound, "job %s has no terminal recording", j.ID))
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", proto.ContentTypeAsciicast)
	w.Header().Set("Content-Disposition", `inline; filename="`+j.ID+`.cast"`)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// exportJob answers GET PathJobExport: the job and its whole access log as
// JSON, or the HTTP requests as a HAR 1.2 archive (TCP streams in the
// custom _tcpStreams field).
func (s *Server) exportJob(w http.ResponseWriter, r *http.Request, p *principal) {
	j, ok := s.jobFor(w, r, p)
	if !ok {
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "har" {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "format must be json or har"))
		return
	}
	entries, err := s.store.Audit(r.Context(), store.SessionStream(j.ID), 0, 0)
	if err != nil {
		s.fail(w, err)
		return
	}
	view := s.jobView(j, s.jobNames(r.Context()))
	var body any
	if format == "json" {
		log := make([]proto.LoggedAccess, 0, len(entries))
		for _, e := range entries {
			log = append(log, proto.LoggedAccess{AccessEntry: jobs.FromAudit(e), Prev: e.Prev, Hash: e.Hash})
		}
		body = struct {
			Job proto.JobView        `json:"job"`
			Log []proto.LoggedAccess `json:"log"`
		}{view, log}
	} else {
		body = harOf(&view, entries)
	}
	w.Header().Set("Content-Type", "application/json")
	if format == "har" {
		w.Header().Set("Content-Type", "application/har+json")
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="porthole-job-%s.%s"`, j.ID, format))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body)
}

func (s *Server) verifyJob(w http.ResponseWriter, r *http.Request, p *principal) {
	j, ok := s.jobFor(w, r, p)
	if !ok {
		return
	}
	s.writeVerification(w, r, store.SessionStream(j.ID), j.LogSeq)
}

// verifyStream answers GET PathAuditVerify?stream=… (admins).
func (s *Server) verifyStream(w http.ResponseWriter, r *http.Request, _ *principal) {
	stream := r.URL.Query().Get("stream")
	if id, ok := strings.CutPrefix(stream, "session/"); !(stream == "admin" || ok && proto.ValidSessionID(id)) {
		writeError(w, http.StatusBadRequest, proto.Errorf(proto.CodeBadMessage, "stream must be admin or session/<id>"))
		return
	}
	var want uint64
	if id, ok := strings.CutPrefix(stream, "session/"); ok {
		if j, err := s.store.Job(r.Context(), id); err == nil {
			want = j.LogSeq
		}
	}
	s.writeVerification(w, r, stream, want)
}

// verifier checks against this node's anchor, re-read for each request.
func (s *Server) verifier() (*auditlog.Verifier, error) {
	v := &auditlog.Verifier{Public: s.auditSigner.Public()}
	if a := s.auditSigner.Anchor(); a != nil {
		heads, err := auditlog.ReadHeads(v.Public, a.Path())
		if err != nil {
			return nil, err
		}
		v.Heads, v.Complete = heads, s.cfg.AuditAnchorComplete
	}
	return v, nil
}

func (s *Server) writeVerification(w http.ResponseWriter, r *http.Request, stream string, want uint64) {
	v, err := s.verifier()
	if err != nil {
		s.fail(w, err)
		return
	}
	rep, err := v.Verify(r.Context(), s.store, stream, want)
	if err != nil {
		s.fail(w, err)
		return
	}
	if !rep.OK {
		s.log.Warn("audit log verification failed", "stream", stream, "broken", rep.Broken, "problem", rep.Problem)
	}
	writeJSON(w, http.StatusOK, &proto.AuditVerification{Stream: rep.Stream, OK: rep.OK, Entries: rep.Entries,
		Attested: rep.Attested, Broken: rep.Broken, Problem: rep.Problem})
}

// terminateJob answers POST PathJobTerminate (admins, and the site admins
// of the job's site): the live session ends with reason admin, and the
// termination is in the admin audit log.
func (s *Server) terminateJob(w http.ResponseWriter, r *http.Request, p *principal) {
	j, ok := s.jobFor(w, r, p)
	if !ok {
		return
	}
	if !p.admin() && !siteAdmin(p, j.Site) {
		s.refuse(r, "terminate: not an admin of the site", "user", p.id(), "session", j.ID)
		writeError(w, http.StatusForbidden, proto.Errorf(proto.CodeForbidden, "only admins and the site's admins end sessions"))
		return
	}
	if err := s.sessions.TerminateSession(r.Context(), j.ID, p.id()); err != nil {
		writeError(w, http.StatusConflict, proto.Errorf(proto.CodeSessionEnded, "the session is not live"))
		return
	}
	s.log.Info("session terminated by an admin", "siteAdmin", !p.admin(), "session", j.ID, "user", j.User, "device", j.Device, "by", p.id())
	if err := s.accounts.Audit(r.Context(), p.id(), "session.terminate", j.ID, j.Site,
		map[string]string{"user": j.User, "device": j.Device, "agent": j.Agent}); err != nil {
		s.fail(w, err)
		return
	}
	s.recorder.Flush()
	if j2, err := s.store.Job(r.Context(), j.ID); err == nil {
		j = j2
	}
	writeJSON(w, http.StatusOK, s.jobView(j, s.jobNames(r.Context())))
}
