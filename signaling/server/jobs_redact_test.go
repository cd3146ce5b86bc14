package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
)

// TestJobExportCarriesTheRedaction: entries that say what changed keep
// their change, refusal and form through the store into the log, the
// JSON and the HAR export; secrets an older agent did not redact (a
// query's password, a form's key) are redacted before they are stored,
// so none reaches the store or an export.
func TestJobExportCarriesTheRedaction(t *testing.T) {
	e := newEnv(t, nil)
	agent := e.agent(agentKey, "printer-1")
	info := e.open(agent, techToken, "printer-1")
	client, _ := e.client(info.Token, dialOpts{})
	now := time.Now().UTC()
	agent.send(proto.TypeAccessLog, info.Session, &proto.AccessLog{Entries: []proto.AccessEntry{
		{Seq: 1, Kind: proto.AccessHTTP, Time: now, Method: "POST", URL: "/settings", Port: 80, Status: 200, ReqBytes: 60, Stream: 1, Change: true,
			Form: &proto.AccessForm{Encoding: proto.FormURLEncoded, Fields: []proto.AccessField{
				{Name: "hostname", Value: "p1"}, {Name: "admin_password", Redacted: true},
				{Name: "wifi_psk", Value: "hunter2-older-agent"}, {Name: "note", Value: "0123456789abcdef0123456789abcdef"}}}},
		{Seq: 2, Kind: proto.AccessHTTP, Time: now, Method: "POST", URL: "/firmware/upload", Port: 80, Status: 403, Stream: 1, Change: true,
			Error: proto.CodeForbidden, Refused: "The site's policy refuses /firmware in this session",
			Form: &proto.AccessForm{Encoding: proto.FormMultipart, Fields: []proto.AccessField{{Name: "image", File: "fw.bin", Size: 4096}}}},
		{Seq: 3, Kind: proto.AccessHTTP, Time: now, Method: "GET", URL: "/login?user=tech&password=hunter2-in-query", Port: 80, Status: 200, Stream: 1},
		{Seq: 4, Kind: proto.AccessTCP, Time: now, Port: 22, Stream: 3, Error: proto.CodeForbidden, Refused: "read-only"},
	}})
	var ack proto.AccessAck
	agent.nextData(proto.TypeAccessAck, &ack)
	if ack.Seq != 4 {
		t.Fatalf("ack %d", ack.Seq)
	}
	client.send(proto.TypeSessionEnd, info.Session, &proto.SessionEnd{Reason: proto.EndByClient})
	agent.next(proto.TypeSessionEnd)
	e.srv.recorder.Flush()

	secrets := []string{"hunter2", "0123456789abcdef0123456789abcdef"}
	noSecret := func(what string, b []byte) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds %q: %s", what, s, b)
			}
		}
	}
	stored, err := e.srv.store.Audit(t.Context(), store.SessionStream(info.Session), 0, 0)
	if err != nil || len(stored) != 4 {
		t.Fatalf("stored %d entries: %v", len(stored), err)
	}
	b, _ := json.Marshal(stored)
	noSecret("the store", b)

	var jv proto.JobView
	e.request(http.MethodGet, jobPath(proto.PathJob, info.Session), techToken, nil, nil, &jv)
	if jv.Changes != 2 || jv.Refused != 2 {
		t.Errorf("job counts %d changes, %d refused", jv.Changes, jv.Refused)
	}
	var log proto.JobLog
	e.request(http.MethodGet, jobPath(proto.PathJobLog, info.Session), techToken, nil, nil, &log)
	if len(log.Entries) != 4 || !log.Entries[0].Change || log.Entries[0].Form == nil || log.Entries[1].Refused == "" ||
		log.Entries[1].Form.Fields[0].File != "fw.bin" || log.Entries[2].URL != "/login?user=tech&password=%5Bredacted%5D" || log.Entries[3].Refused != "read-only" {
		t.Fatalf("log %+v", log.Entries)
	}
	var v proto.AuditVerification
	e.request(http.MethodGet, jobPath(proto.PathJobVerify, info.Session), techToken, nil, nil, &v)
	if !v.OK || v.Entries != 4 {
		t.Fatalf("verify %+v", v)
	}
	for _, format := range []string{"json", "har"} {
		resp := e.download(jobPath(proto.PathJobExport, info.Session)+"?format="+format, techToken)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		noSecret(format+" export", b)
		if format == "json" {
			continue
		}
		var har struct {
			Log struct {
				Entries []struct {
					Request struct {
						URL      string `json:"url"`
						PostData *struct {
							MimeType string `json:"mimeType"`
							Params   []struct {
								Name     string `json:"name"`
								Value    string `json:"value"`
								FileName string `json:"fileName"`
								Size     int64  `json:"_size"`
							} `json:"params"`
						} `json:"postData"`
					} `json:"request"`
					Change  bool   `json:"_change"`
					Refused string `json:"_refused"`
				} `json:"entries"`
				TCP []struct {
					Refused string `json:"_refused"`
				} `json:"_tcpStreams"`
			} `json:"log"`
		}
		if err := json.Unmarshal(b, &har); err != nil {
			t.Fatal(err)
		}
		en := har.Log.Entries
		if len(en) != 3 || !en[0].Change || en[0].Request.PostData == nil || en[0].Request.PostData.MimeType != "application/x-www-form-urlencoded" {
			t.Fatalf("HAR entries %s", b)
		}
		params := map[string]string{}
		for _, p := range en[0].Request.PostData.Params {
			params[p.Name] = p.Value
		}
		if params["hostname"] != "p1" || params["admin_password"] != "[redacted]" || params["wifi_psk"] != "[redacted]" || params["note"] != "[redacted]" {
			t.Errorf("HAR params %v", params)
		}
		if p := en[1].Request.PostData; !en[1].Change || en[1].Refused == "" || p == nil || p.Params[0].FileName != "fw.bin" || p.Params[0].Size != 4096 {
			t.Errorf("HAR refused upload %+v", en[1])
		}
		if !strings.HasSuffix(en[2].Request.URL, "/login?user=tech&password=%5Bredacted%5D") || len(har.Log.TCP) != 1 || har.Log.TCP[0].Refused != "read-only" {
			t.Errorf("HAR %s", b)
		}
	}
}
