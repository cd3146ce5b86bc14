package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/porthole-dev/porthole/integration/realews"
	"github.com/porthole-dev/porthole/integration/stack"
	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
)

// policySecrets are sent in forms and queries through a session; none of
// them may be stored anywhere.
var policySecrets = []string{"hunter2-ews", "c0mmunity-s3cret", "query-s3cret-value", "json-s3cret", "FILE-CONTENT-S3CRET"}

// TestRealEWSPolicyAndNoSecretInTheStore: lighttpd from Debian as a
// device whose site policy denies /admin and /upgrade; every spelling of
// /admin is refused by the agent (lighttpd would ask for Digest
// credentials), the session's forms and queries are logged with their
// secrets redacted, and no secret reaches the store — the bbolt file or
// Redis — nor the agent's spool nor the HAR export.
func TestRealEWSPolicyAndNoSecretInTheStore(t *testing.T) {
	for _, backend := range []string{"bbolt", "redis"} {
		t.Run(backend, func(t *testing.T) {
			l := realews.StartLighttpd(t)
			opts := stack.Options{ExtraDevices: []map[string]any{{
				"id": "ews-policy", "name": "EWS under policy", "scheme": "http", "address": "127.0.0.1", "httpPort": l.HTTPPort,
				"policy":  map[string]any{"deny": []string{"/admin", "/upgrade"}},
				"actions": []string{"/cgi-bin/"},
			}}}
			var rdb *redis.Client
			if backend == "redis" {
				addr := testenv.StartRedis(t)
				opts.Redis = "redis://" + addr
				rdb = redis.NewClient(&redis.Options{Addr: addr})
				t.Cleanup(func() { rdb.Close() })
			}
			s := stack.Start(t, opts)
			s.WaitOnline(t, "ews-policy")
			_, m := startCLI(t, s, `serving \S+ web page at (http://\S+/)`, "http", "ews-policy", "--listen", "127.0.0.1:0")
			base := strings.TrimSuffix(m[1], "/")
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			do := func(method, path, ct string, body []byte) (int, string) {
				t.Helper()
				req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
				if ct != "" {
					req.Header.Set("Content-Type", ct)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp.StatusCode, string(b)
			}
			if st, body := do("GET", "/index.html", "", nil); st != 200 || !strings.Contains(body, "EWS") {
				t.Fatalf("index: %d %q", st, body)
			}
			// lighttpd answers /admin/ with 401 (Digest); the agent never lets
			// a spelling of it through.
			for _, p := range []string{"/admin/", "/%61dmin/", "/%2561dmin/", "/ADMIN/", "/Admin/index.html", "/x/../admin/", "/./admin/",
				"/admin;jsessionid=1/", "/x%2f..%2fadmin/"} {
				if st, body := do("GET", p, "", nil); st != http.StatusForbidden || !strings.Contains(body, "refuses /admin") {
					t.Errorf("GET %s: %d %q", p, st, body)
				}
			}
			if st, _ := do("GET", "//admin/", "", nil); st == http.StatusUnauthorized || st == http.StatusOK {
				t.Errorf("GET //admin/ reached lighttpd: %d", st)
			}
			// A settings form, a JSON body, an action with a query, a refused upload.
			if st, _ := do("POST", "/cgi-bin/status.cgi", "application/x-www-form-urlencoded",
				[]byte("hostname=ews-1&admin_password=hunter2-ews&snmp_community=c0mmunity-s3cret")); st != 200 {
				t.Errorf("form POST: %d", st)
			}
			if st, _ := do("POST", "/cgi-bin/status.cgi", "application/json", []byte(`{"wifi":{"ssid":"Office","psk":"json-s3cret"}}`)); st != 200 {
				t.Errorf("JSON POST: %d", st)
			}
			if st, _ := do("GET", "/cgi-bin/status.cgi?page=1&token=query-s3cret-value", "", nil); st != 200 {
				t.Errorf("action GET: %d", st)
			}
			var mp bytes.Buffer
			mw := multipart.NewWriter(&mp)
			fw, _ := mw.CreateFormFile("image", "ews-2.0.bin")
			_, _ = fw.Write([]byte(strings.Repeat("FILE-CONTENT-S3CRET ", 500)))
			_ = mw.WriteField("password", "hunter2-ews")
			_ = mw.Close()
			if st, _ := do("POST", "/upgrade.html", mw.FormDataContentType(), mp.Bytes()); st != http.StatusForbidden {
				t.Errorf("upload: %d", st)
			}

			info := waitJobEntries(t, s, 14)
			entries := jobLogWhere(t, s, info.ID, "the upload in the log", func(e proto.LoggedAccess) bool { return e.URL == "/upgrade.html" })
			var refusedAdmin, changes int
			for _, e := range entries {
				if strings.Contains(e.Refused, "refuses /admin") {
					refusedAdmin++
				}
				if e.Change {
					changes++
				}
				switch {
				case e.Method == "POST" && e.Form != nil && e.Form.Encoding == proto.FormURLEncoded:
					want := map[string]string{"hostname": "ews-1", "admin_password": "", "snmp_community": ""}
					for _, f := range e.Form.Fields {
						if w, ok := want[f.Name]; !ok || f.Value != w || (w == "") != f.Redacted {
							t.Errorf("form field %+v", f)
						}
					}
				case e.Method == "POST" && e.Form != nil && e.Form.Encoding == proto.FormJSON:
					if len(e.Form.Fields) != 2 || e.Form.Fields[0].Name != "wifi.psk" || !e.Form.Fields[0].Redacted || e.Form.Fields[1].Value != "Office" {
						t.Errorf("JSON fields %+v", e.Form.Fields)
					}
				case e.URL == "/upgrade.html":
					if !e.Change || !strings.Contains(e.Refused, "refuses /upgrade") || e.Form == nil || e.Form.Fields[0].File != "ews-2.0.bin" {
						t.Errorf("upload entry %+v", e.AccessEntry)
					}
				case strings.HasPrefix(e.URL, "/cgi-bin/status.cgi?"):
					if e.URL != "/cgi-bin/status.cgi?page=1&token=%5Bredacted%5D" || !e.Change {
						t.Errorf("action entry %+v", e.AccessEntry)
					}
				}
			}
			if refusedAdmin < 9 || changes != 4 {
				t.Errorf("%d refusals of /admin, %d changes; log %+v", refusedAdmin, changes, entries)
			}

			// No secret anywhere it is kept or exported.
			check := func(where string, b []byte) {
				t.Helper()
				for _, sec := range policySecrets {
					if bytes.Contains(b, []byte(sec)) {
						t.Errorf("%s holds %q", where, sec)
					}
				}
			}
			for _, format := range []string{"har", "json"} {
				req, _ := http.NewRequest("GET", s.SignalingURL+strings.Replace(proto.PathJobExport, "{id}", info.ID, 1)+"?format="+format, nil)
				req.Header.Set("Authorization", "Bearer "+s.TechToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !bytes.Contains(b, []byte("ews-2.0.bin")) {
					t.Fatalf("%s export: %d %s", format, resp.StatusCode, b)
				}
				check(format+" export", b)
			}
			checkTree(t, "the agent's state", s.AgentStateDir, check)
			checkTree(t, "signaling's data directory", s.DataDir, check)
			if rdb != nil {
				check("Redis", dumpRedis(t, rdb))
			}
		})
	}
}

// checkTree runs check on every file under dir.
func checkTree(t *testing.T, what, dir string, check func(string, []byte)) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		check(what+" ("+p+")", b)
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("%s: %d files: %v", what, n, err)
	}
}

// dumpRedis returns every key and value in rdb, as text.
func dumpRedis(t *testing.T, rdb *redis.Client) []byte {
	t.Helper()
	ctx := context.Background()
	var out bytes.Buffer
	keys := 0
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		keys++
		var v any
		var err error
		switch typ, _ := rdb.Type(ctx, k).Result(); typ {
		case "string":
			v, err = rdb.Get(ctx, k).Result()
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "set":
			v, err = rdb.SMembers(ctx, k).Result()
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			v, err = rdb.XRange(ctx, k, "-", "+").Result()
		default:
			v = typ
		}
		if err != nil {
			t.Fatalf("redis %s: %v", k, err)
		}
		b, _ := json.Marshal(v)
		out.WriteString(k + " " + string(b) + "\n")
	}
	if err := iter.Err(); err != nil || keys == 0 {
		t.Fatalf("redis scan: %d keys: %v", keys, err)
	}
	if !bytes.Contains(out.Bytes(), []byte("ews-1")) {
		t.Fatal("the session's access log is not in Redis")
	}
	return out.Bytes()
}

// TestCLIForwardOnlyToThePolicysPorts: a device declares two ports and its
// site policy allows one; a TCP forward to the other is refused by the
// agent and logged as refused, the allowed one carries lighttpd's HTTP.
func TestCLIForwardOnlyToThePolicysPorts(t *testing.T) {
	l := realews.StartLighttpd(t)
	s := stack.Start(t, stack.Options{ExtraDevices: []map[string]any{{
		"id": "ews-ports", "name": "EWS, one port allowed", "scheme": "http", "address": "127.0.0.1", "httpPort": l.HTTPPort,
		"ports": []int{l.HTTPPort, l.HTTPSPort}, "policy": map[string]any{"ports": []int{l.HTTPPort}},
	}}})
	s.WaitOnline(t, "ews-ports")
	raw := func(port int) string {
		t.Helper()
		_, m := startCLI(t, s, `forwarding (\S+) to`, "forward", "ews-ports", fmt.Sprint(port), "--listen", "127.0.0.1:0")
		conn, err := net.DialTimeout("tcp", m[1], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.WriteString(conn, "GET /index.html HTTP/1.1\r\nHost: ews\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(conn)
		return string(b)
	}
	if got := raw(l.HTTPPort); !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Fatalf("allowed port: %.300q", got)
	}
	if got := raw(l.HTTPSPort); got != "" {
		t.Fatalf("refused port carried %.300q", got)
	}
	var jobs proto.JobList
	testenv.Eventually(t, 30*time.Second, "the refused stream in a job's log", func() bool {
		jobs = proto.JobList{}
		techGet(t, s, proto.PathJobs, &jobs)
		for _, j := range jobs.Jobs {
			var log proto.JobLog
			techGet(t, s, strings.Replace(proto.PathJobLog, "{id}", j.ID, 1), &log)
			for _, e := range log.Entries {
				if e.Kind == proto.AccessTCP && e.Port == l.HTTPSPort && strings.Contains(e.Refused, fmt.Sprintf("does not allow port %d", l.HTTPSPort)) &&
					e.Error == proto.CodeForbidden {
					return true
				}
			}
		}
		return false
	})
}
