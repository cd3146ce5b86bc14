package sigclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/porthole-dev/porthole/proto"
)

// APIError is a refusal from signaling's HTTP API.
type APIError struct {
	Status int
	Err    *proto.Error
	// Foreign says the answer was not a Porthole error body (an HTML
	// page, a proxy's message): the URL is likely not a Porthole server.
	Foreign bool
}

func (e *APIError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s (HTTP %d)", e.Err.Error(), e.Status)
	}
	return fmt.Sprintf("HTTP %d", e.Status)
}

func (e *APIError) Unwrap() error {
	if e.Err == nil {
		return nil
	}
	return e.Err
}

// responseError reads a bounded error body from resp.
func responseError(resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	e := &APIError{Status: resp.StatusCode}
	var pe proto.Error
	if json.Unmarshal(body, &pe) == nil && pe.Code != "" {
		e.Err = &pe
		return e
	}
	e.Foreign = true
	if msg := strings.TrimSpace(string(body)); msg != "" {
		e.Err = &proto.Error{Code: proto.CodeForHTTPStatus(resp.StatusCode), Message: msg}
	}
	return e
}

// API is a small client of signaling's HTTP API for technicians.
type API struct {
	Base   string // e.g. http://127.0.0.1:8080
	Token  string // technician token
	Client *http.Client
}

func (a *API) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(a.Base, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := a.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return responseError(resp)
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read %s %s: %w", method, path, err)
	}
	// Strict like every wire decoder (proto.CheckJSON): no repeated keys,
	// no invalid UTF-8.
	if err := proto.CheckJSON(b); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// Devices lists the devices the technician may open.
func (a *API) Devices(ctx context.Context) (*proto.DeviceList, error) {
	var l proto.DeviceList
	if err := a.do(ctx, http.MethodGet, proto.PathDevices, nil, &l); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return &l, nil
}

// Me describes the account the token belongs to.
func (a *API) Me(ctx context.Context) (*proto.Me, error) {
	var m proto.Me
	if err := a.do(ctx, http.MethodGet, proto.PathMe, nil, &m); err != nil {
		return nil, fmt.Errorf("who am I: %w", err)
	}
	return &m, nil
}

// CreateSession asks for a session to a device; it returns once the agent
// accepted it.
func (a *API) CreateSession(ctx context.Context, device string) (*proto.SessionInfo, error) {
	var s proto.SessionInfo
	if err := a.do(ctx, http.MethodPost, proto.PathSessions, &proto.CreateSession{Device: device}, &s); err != nil {
		return nil, fmt.Errorf("open session to %s: %w", device, err)
	}
	return &s, nil
}

// EndSession ends a session.
func (a *API) EndSession(ctx context.Context, session string) error {
	if err := a.do(ctx, http.MethodDelete, proto.PathSessions+"/"+session, nil, nil); err != nil {
		return fmt.Errorf("end session %s: %w", session, err)
	}
	return nil
}

// Jobs lists jobs (sessions past and present) the caller may see, newest
// first; query takes the filters of proto.PathJobs (device, user, limit…).
func (a *API) Jobs(ctx context.Context, query url.Values) (*proto.JobList, error) {
	path := proto.PathJobs
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	var l proto.JobList
	if err := a.do(ctx, http.MethodGet, path, nil, &l); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return &l, nil
}

// JobRecording fetches a job's terminal recording (asciicast v2).
func (a *API) JobRecording(ctx context.Context, job string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(a.Base, "/")+strings.Replace(proto.PathJobRecording, "{id}", url.PathEscape(job), 1), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.Token)
	c := a.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("recording of job %s: %w", job, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("recording of job %s: %w", job, responseError(resp))
	}
	if ct := resp.Header.Get("Content-Type"); ct != proto.ContentTypeAsciicast {
		return nil, fmt.Errorf("recording of job %s: served as %q", job, ct)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, proto.MaxRecording+1))
	if err != nil {
		return nil, fmt.Errorf("recording of job %s: %w", job, err)
	}
	return b, nil
}

// SocketURL turns an http(s) base URL into the ws(s) URL of path.
func SocketURL(base, path string) string {
	base = strings.TrimRight(base, "/")
	switch {
	case strings.HasPrefix(base, "https://"):
		return "wss://" + strings.TrimPrefix(base, "https://") + path
	case strings.HasPrefix(base, "http://"):
		return "ws://" + strings.TrimPrefix(base, "http://") + path
	}
	return base + path
}
