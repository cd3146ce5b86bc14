package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/accounts"
)

// download GETs path with token and returns the open response.
func (e *env) download(path, token string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %s", path, resp.Status)
	}
	return resp
}

func jobPath(p, id string) string { return strings.Replace(p, "{id}", id, 1) }

func accessEntries(from, to uint64) *proto.AccessLog {
	l := &proto.AccessLog{}
	for s := from; s <= to; s++ {
		via := proto.ViaWebRTC
		if s%2 == 0 {
			via = proto.ViaSignaling // the fallback's entries
		}
		l.Entries = append(l.Entries, proto.AccessEntry{Seq: s, Kind: proto.AccessHTTP, Time: time.Now().UTC(),
			Method: "GET", URL: fmt.Sprintf("/page/%d?x=1", s), Port: 80, Status: 200, RespBytes: 100, DurationUS: 1500, Stream: 1, Via: via})
	}
	return l
}

// TestJobRecordsLifecycleAndAccessLog: a session becomes a job with its
// states; the agent's access log is stored once per sequence number
// (re-sent batches are acknowledged and dropped), a foreign agent cannot
// write to it, and the API lists, filters, exports and verifies it.
func TestJobRecordsLifecycleAndAccessLog(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	client, _ := e.client(info.Token, dialOpts{})
	agent.send(proto.TypeSessionPath, info.Session, &proto.SessionPath{Path: proto.PathRelay})

	agent.send(proto.TypeAccessLog, info.Session, accessEntries(1, 3))
	var ack proto.AccessAck
	agent.nextData(proto.TypeAccessAck, &ack)
	if ack.Seq != 3 {
		t.Fatalf("ack %d, want 3", ack.Seq)
	}
	// After a reconnect the agent re-sends 2..5: 2 and 3 are dropped.
	agent.send(proto.TypeAccessLog, info.Session, accessEntries(2, 5))
	agent.nextData(proto.TypeAccessAck, &ack)
	if ack.Seq != 5 {
		t.Fatalf("ack %d, want 5", ack.Seq)
	}
	// A gap is not stored; the ack says where to resume.
	agent.send(proto.TypeAccessLog, info.Session, accessEntries(8, 9))
	agent.nextData(proto.TypeAccessAck, &ack)
	if ack.Seq != 5 {
		t.Fatalf("ack after a gap %d, want 5", ack.Seq)
	}
	// Another agent cannot write into this session's log.
	other := e.agent(agentKey2, "printer-2")
	other.send(proto.TypeAccessLog, info.Session, accessEntries(6, 6))
	other.nextError(proto.CodeSessionNotFound)

	client.send(proto.TypeSessionEnd, info.Session, &proto.SessionEnd{Reason: proto.EndByClient})
	agent.next(proto.TypeSessionEnd)
	e.srv.recorder.Flush()

	var list proto.JobList
	e.request(http.MethodGet, proto.PathJobs, techToken, nil, nil, &list)
	if len(list.Jobs) != 1 {
		t.Fatalf("%d jobs", len(list.Jobs))
	}
	j := list.Jobs[0]
	if j.ID != info.Session || j.User != "alice" || j.Device != "printer-1" || j.State != "ended" || j.EndReason != "client" ||
		j.Path != "relay" || j.Requests != 5 || j.RespBytes != 500 || j.LogEntries != 5 || j.Live || j.Type != "Open Device Webpage" {
		t.Fatalf("job %+v", j)
	}
	var states []string
	for _, s := range j.States {
		states = append(states, s.State)
	}
	if got := strings.Join(states, ","); got != "requested,verifying,ready,connected,ended" {
		t.Fatalf("states %s", got)
	}
	for q, want := range map[string]int{"?device=printer-1": 1, "?device=printer-9": 0, "?user=alice": 1, "?user=bob": 0,
		"?path=relay": 1, "?path=direct": 0, "?reason=client": 1, "?reason=expired": 0, "?minDuration=1h": 0,
		"?from=" + time.Now().Add(time.Hour).UTC().Format(time.RFC3339): 0, "?to=" + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339): 0} {
		var l proto.JobList
		e.request(http.MethodGet, proto.PathJobs+q, techToken, nil, nil, &l)
		if len(l.Jobs) != want {
			t.Errorf("filter %s: %d jobs, want %d", q, len(l.Jobs), want)
		}
	}

	var log proto.JobLog
	e.request(http.MethodGet, jobPath(proto.PathJobLog, j.ID), techToken, nil, nil, &log)
	if len(log.Entries) != 5 || log.Entries[4].URL != "/page/5?x=1" || log.Entries[4].Prev != log.Entries[3].Hash {
		t.Fatalf("log %+v", log.Entries)
	}
	if log.Entries[0].Via != proto.ViaWebRTC || log.Entries[1].Via != proto.ViaSignaling {
		t.Fatalf("paths not kept: %q %q", log.Entries[0].Via, log.Entries[1].Via)
	}
	var v proto.AuditVerification
	e.request(http.MethodGet, jobPath(proto.PathJobVerify, j.ID), techToken, nil, nil, &v)
	if !v.OK || v.Entries != 5 || v.Attested != 5 {
		t.Fatalf("verify %+v", v)
	}

	resp := e.download(jobPath(proto.PathJobExport, j.ID)+"?format=har", techToken)
	var har struct {
		Log struct {
			Version string `json:"version"`
			Entries []struct {
				Request struct {
					Method      string `json:"method"`
					URL         string `json:"url"`
					QueryString []struct{ Name, Value string }
				} `json:"request"`
				Response struct {
					Status int `json:"status"`
				} `json:"response"`
				Time float64 `json:"time"`
				Via  string  `json:"_via"`
			} `json:"entries"`
		} `json:"log"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&har); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if har.Log.Version != "1.2" || len(har.Log.Entries) != 5 || har.Log.Entries[0].Request.URL != "http://printer-1:80/page/1?x=1" ||
		har.Log.Entries[0].Response.Status != 200 || har.Log.Entries[0].Time != 1.5 || har.Log.Entries[0].Request.QueryString[0].Name != "x" ||
		har.Log.Entries[0].Via != proto.ViaWebRTC || har.Log.Entries[1].Via != proto.ViaSignaling {
		t.Fatalf("HAR %+v", har.Log)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, ".har") {
		t.Errorf("Content-Disposition %q", cd)
	}
	resp = e.download(jobPath(proto.PathJobExport, j.ID)+"?format=json", techToken)
	var exp struct {
		Job proto.JobView        `json:"job"`
		Log []proto.LoggedAccess `json:"log"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&exp)
	resp.Body.Close()
	if exp.Job.ID != j.ID || len(exp.Log) != 5 {
		t.Fatalf("JSON export: job %q, %d entries", exp.Job.ID, len(exp.Log))
	}
	if r := e.request(http.MethodGet, jobPath(proto.PathJob, "nosuchjob00000"), techToken, nil, nil, nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown job: %d", r.StatusCode)
	}
}

// TestAdminTerminatesLiveSession: the admin API ends a live session with
// reason admin, both sides are told, and the termination is in the admin
// audit log.
func TestAdminTerminatesLiveSession(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	client, _ := e.client(info.Token, dialOpts{})
	var j proto.JobView
	resp := e.request(http.MethodPost, jobPath(proto.PathJobTerminate, info.Session), bobToken, nil, nil, &j)
	if resp.StatusCode != http.StatusOK || j.State != "ended" || j.EndReason != "admin" || j.EndedBy != "bob" {
		t.Fatalf("terminate: %d %+v", resp.StatusCode, j)
	}
	for _, p := range []*peer{agent, client} {
		var end proto.SessionEnd
		p.nextData(proto.TypeSessionEnd, &end)
		if end.Reason != proto.EndByAdmin {
			t.Errorf("end reason %s", end.Reason)
		}
	}
	entries, err := e.srv.store.Audit(t.Context(), accounts.AuditStream, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := entries[len(entries)-1]
	if last.Action != "session.terminate" || last.Actor != "bob" || last.Target != info.Session {
		t.Fatalf("admin audit %+v", last)
	}
	if resp := e.request(http.MethodPost, jobPath(proto.PathJobTerminate, info.Session), bobToken, nil, nil, nil); resp.StatusCode != http.StatusConflict {
		t.Fatalf("terminating an ended session: %d", resp.StatusCode)
	}
	var v proto.AuditVerification
	e.request(http.MethodGet, proto.PathAuditVerify+"?stream=admin", bobToken, nil, nil, &v)
	if !v.OK || v.Entries == 0 {
		t.Fatalf("admin log verification %+v", v)
	}
}

// TestJobKeepsTerminalRecording: an agent's rec.chunk messages are stored
// once per chunk number (a re-sent one is acknowledged and dropped, a gap
// is not stored), a foreign agent cannot write into the recording, and
// GET PathJobRecording serves it as asciicast; a job without a terminal
// has none. A session with a terminal is an Open Device Terminal job.
func TestJobKeepsTerminalRecording(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	path := jobPath(proto.PathJobRecording, info.Session)
	if resp := e.request(http.MethodGet, path, techToken, nil, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("recording of a job without a terminal: %s", resp.Status)
	}
	head := `{"version":2,"width":80,"height":24,"timestamp":1800000000}` + "\n"
	chunks := []string{head + `[0.1,"o","$ "]` + "\n", `[0.5,"o","uname -a\r\n"]` + "\n", `[0.6,"r","100x30"]` + "\n"}
	var ack proto.RecordingAck
	for i, seq := range []uint64{1, 2, 1, 4} { // 1 re-sent, 4 a gap
		c := chunks[min(int(seq)-1, len(chunks)-1)]
		agent.send(proto.TypeRecording, info.Session, &proto.RecordingChunk{Seq: seq, Data: c})
		agent.nextData(proto.TypeRecordingAck, &ack)
		if ack.Seq != 2 && i > 0 || ack.Seq != 1 && i == 0 {
			t.Fatalf("chunk %d acknowledged as %d", seq, ack.Seq)
		}
	}
	other := e.agent(agentKey2, "printer-2")
	other.send(proto.TypeRecording, info.Session, &proto.RecordingChunk{Seq: 3, Data: chunks[2]})
	other.nextError(proto.CodeSessionNotFound)

	// The session window's own page, then a terminal: an Open Device
	// Terminal job.
	l := accessEntries(1, 1)
	l.Entries = append(l.Entries, proto.AccessEntry{Seq: 2, Kind: proto.AccessTCP, Time: time.Now().UTC(), Port: 22, Service: proto.ServiceSSH,
		ReqBytes: 40, RespBytes: 900, DurationUS: 2e6, Stream: 3, Via: proto.ViaWebRTC})
	agent.send(proto.TypeAccessLog, info.Session, l)
	var lack proto.AccessAck
	agent.nextData(proto.TypeAccessAck, &lack)
	var j proto.JobView
	e.request(http.MethodGet, jobPath(proto.PathJob, info.Session), techToken, nil, nil, &j)
	if j.Type != "Open Device Terminal" {
		t.Fatalf("a session with a terminal is a job of type %q", j.Type)
	}

	resp := e.download(path, techToken)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != proto.ContentTypeAsciicast {
		t.Fatalf("served as %q", ct)
	}
	if got, want := string(b), chunks[0]+chunks[1]; got != want {
		t.Fatalf("recording %q, want %q", got, want)
	}
}
