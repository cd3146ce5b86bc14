package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/porthole-dev/porthole/internal/redact"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/jobs"
	"github.com/porthole-dev/porthole/signaling/store"
)

// har is a HAR 1.2 archive (http://www.softwareishard.com/blog/har-12-spec/).
type har struct {
	Log harLog `json:"log"`
}

type harLog struct {
	Version string         `json:"version"`
	Creator harCreator     `json:"creator"`
	Comment string         `json:"comment,omitempty"`
	Entries []harEntry     `json:"entries"`
	TCP     []harTCP       `json:"_tcpStreams,omitempty"`
	Job     *proto.JobView `json:"_job,omitempty"`
}

type harCreator struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type harEntry struct {
	Started  string      `json:"startedDateTime"`
	Time     float64     `json:"time"`
	Request  harRequest  `json:"request"`
	Response harResponse `json:"response"`
	Cache    struct{}    `json:"cache"`
	Timings  harTimings  `json:"timings"`
	Seq      uint64      `json:"_seq"`
	Stream   int         `json:"_stream"`
	Via      string      `json:"_via,omitempty"` // proto.ViaWebRTC or proto.ViaSignaling
	Error    string      `json:"_error,omitempty"`
	Hash     string      `json:"_hash"`
	// What changed (issue 18): a state-changing request, the policy's
	// refusal, whether the recorded form was cut short.
	Change        bool   `json:"_change,omitempty"`
	Refused       string `json:"_refused,omitempty"`
	FormTruncated bool   `json:"_formTruncated,omitempty"`
}

type harRequest struct {
	Method      string   `json:"method"`
	URL         string   `json:"url"`
	HTTPVersion string   `json:"httpVersion"`
	Cookies     []string `json:"cookies"`
	Headers     []string `json:"headers"`
	QueryString []harNV  `json:"queryString"`
	HeadersSize int      `json:"headersSize"`
	BodySize    int64    `json:"bodySize"`
	PostData    *harPost `json:"postData,omitempty"`
}

// harPost is a recorded form: its fields, secrets as redact.Marker, file
// parts by name and size only.
type harPost struct {
	MimeType string         `json:"mimeType"`
	Params   []harPostParam `json:"params"`
	Text     string         `json:"text"`
}

type harPostParam struct {
	Name     string `json:"name"`
	Value    string `json:"value,omitempty"`
	FileName string `json:"fileName,omitempty"`
	Size     int64  `json:"_size,omitempty"`
}

var harMime = map[string]string{proto.FormURLEncoded: "application/x-www-form-urlencoded", proto.FormMultipart: "multipart/form-data", proto.FormJSON: "application/json"}

func harPostOf(f *proto.AccessForm) *harPost {
	f = redact.Fields(f)
	if f == nil {
		return nil
	}
	p := &harPost{MimeType: harMime[f.Encoding], Params: []harPostParam{}}
	for _, fd := range f.Fields {
		v := fd.Value
		if fd.Redacted {
			v = redact.Marker
		}
		p.Params = append(p.Params, harPostParam{Name: fd.Name, Value: v, FileName: fd.File, Size: fd.Size})
	}
	return p
}

type harNV struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type harResponse struct {
	Status      int        `json:"status"`
	StatusText  string     `json:"statusText"`
	HTTPVersion string     `json:"httpVersion"`
	Cookies     []string   `json:"cookies"`
	Headers     []string   `json:"headers"`
	Content     harContent `json:"content"`
	RedirectURL string     `json:"redirectURL"`
	HeadersSize int        `json:"headersSize"`
	BodySize    int64      `json:"bodySize"`
}

type harContent struct {
	Size     int64  `json:"size"`
	MimeType string `json:"mimeType"`
}

type harTimings struct {
	Send    float64 `json:"send"`
	Wait    float64 `json:"wait"`
	Receive float64 `json:"receive"`
}

type harTCP struct {
	Started  string  `json:"startedDateTime"`
	Time     float64 `json:"time"`
	Port     int     `json:"port"`
	BytesOut int64   `json:"bytesToDevice"`
	BytesIn  int64   `json:"bytesFromDevice"`
	Seq      uint64  `json:"_seq"`
	Stream   int     `json:"_stream"`
	Via      string  `json:"_via,omitempty"`
	Error    string  `json:"_error,omitempty"`
	Hash     string  `json:"_hash"`
	Refused  string  `json:"_refused,omitempty"`
}

func harOf(job *proto.JobView, entries []*store.AuditEntry) *har {
	h := &har{Log: harLog{Version: "1.2", Creator: harCreator{Name: "Porthole", Version: "1"},
		Comment: fmt.Sprintf("%s: %s on %s by %s", job.Type, job.ID, job.Device, job.User), Entries: []harEntry{}, Job: job}}
	for _, a := range entries {
		e := jobs.FromAudit(a)
		ms := float64(e.DurationUS) / 1000
		started := e.Time.UTC().Format(time.RFC3339Nano)
		if e.Kind == proto.AccessTCP {
			h.Log.TCP = append(h.Log.TCP, harTCP{Started: started, Time: ms, Port: e.Port, BytesOut: e.ReqBytes,
				BytesIn: e.RespBytes, Seq: e.Seq, Stream: e.Stream, Via: e.Via, Error: string(e.Error), Hash: a.Hash, Refused: e.Refused})
			continue
		}
		e.URL = redact.Target(e.URL) // an older agent's entry: the export carries no secret either
		u := "http://" + job.Device
		if e.Port != 0 {
			u += ":" + strconv.Itoa(e.Port)
		}
		u += e.URL
		var qs []harNV
		if _, raw, ok := strings.Cut(e.URL, "?"); ok {
			for _, kv := range strings.Split(raw, "&") {
				k, v, _ := strings.Cut(kv, "=")
				qs = append(qs, harNV{Name: k, Value: v})
			}
		}
		if qs == nil {
			qs = []harNV{}
		}
		h.Log.Entries = append(h.Log.Entries, harEntry{
			Started: started, Time: ms,
			Request: harRequest{Method: e.Method, URL: u, HTTPVersion: "HTTP/1.1", Cookies: []string{}, Headers: []string{},
				QueryString: qs, HeadersSize: -1, BodySize: e.ReqBytes, PostData: harPostOf(e.Form)},
			Response: harResponse{Status: e.Status, StatusText: http.StatusText(e.Status), HTTPVersion: "HTTP/1.1",
				Cookies: []string{}, Headers: []string{}, Content: harContent{Size: e.RespBytes, MimeType: ""},
				HeadersSize: -1, BodySize: e.RespBytes},
			Timings: harTimings{Wait: ms},
			Seq:     e.Seq, Stream: e.Stream, Via: e.Via, Error: string(e.Error), Hash: a.Hash,
			Change: e.Change, Refused: e.Refused, FormTruncated: e.Form != nil && e.Form.Truncated,
		})
	}
	return h
}
