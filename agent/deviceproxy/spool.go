package deviceproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
)

// Request bodies of unknown length.
//
// The browser side sends bodies up to 1 MiB with their length; larger ones,
// and a CLI client's chunked uploads, arrive with ContentLength -1. Many
// embedded web servers refuse chunked requests (411 Length Required, or
// they hang), and the large bodies are exactly the firmware images that
// matter. So the agent learns the length before it sends: a body that ends
// within spoolMemory stays in memory; a longer one is spooled to a
// temporary file, up to Device.UploadSpoolLimit (default 1 GiB; 413
// beyond), which is removed when the request ends. The cost is disk space
// and a device that sees the upload only once the technician finished
// sending it; Device.UploadSpoolLimit < 0 streams such bodies chunked
// instead, for devices that take them.

// DefaultUploadSpoolLimit is Device.UploadSpoolLimit's default.
const DefaultUploadSpoolLimit = 1 << 30

// spoolMemory is the part of a body of unknown length kept in memory
// before spilling to a file.
const spoolMemory = 64 << 10

var errBodyTooLarge = errors.New("request body too large")

// spool replaces r.Body (of unknown length) by a body of known length. It
// returns a cleanup to run when the request is over (always non-nil), and
// on failure the status to answer.
func (p *Proxy) spool(r *http.Request) (cleanup func(), status int, err error) {
	cleanup = func() {}
	if r.Body == nil || r.Body == http.NoBody {
		r.ContentLength = 0
		r.Body = http.NoBody
		return cleanup, 0, nil
	}
	limit := p.d.UploadSpoolLimit
	failed := func(err error) (func(), int, error) {
		switch {
		case errors.Is(err, errBodyTooLarge):
			return cleanup, http.StatusRequestEntityTooLarge, fmt.Errorf("upload larger than the agent's limit of %d bytes", limit)
		case r.Context().Err() != nil && errors.Is(r.Context().Err(), context.Canceled):
			return cleanup, StatusClientClosedRequest, fmt.Errorf("upload cancelled: %w", err)
		default:
			return cleanup, http.StatusBadRequest, fmt.Errorf("read upload: %w", err)
		}
	}
	head := make([]byte, min(int64(spoolMemory), limit)+1)
	n, err := io.ReadFull(r.Body, head)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		head = head[:n]
		r.Body = io.NopCloser(bytes.NewReader(head))
		r.ContentLength = int64(n)
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(head)), nil }
		return cleanup, 0, nil
	case err != nil:
		return failed(err)
	case int64(n) > limit:
		return failed(errBodyTooLarge)
	}
	f, err := os.CreateTemp(p.d.SpoolDir, "porthole-upload-*")
	if err != nil {
		return cleanup, http.StatusInsufficientStorage, fmt.Errorf("spool upload: %w", err)
	}
	cleanup = func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}
	if _, err := f.Write(head); err != nil {
		return cleanup, http.StatusInsufficientStorage, fmt.Errorf("spool upload: %w", err)
	}
	buf := p.pool.Get()
	rest, err := io.CopyBuffer(onlyWriter{f}, io.LimitReader(r.Body, limit-int64(n)+1), buf)
	p.pool.Put(buf)
	total := int64(n) + rest
	switch {
	case err != nil:
		var pe *os.PathError
		if errors.As(err, &pe) {
			return cleanup, http.StatusInsufficientStorage, fmt.Errorf("spool upload: %w", err)
		}
		return failed(err)
	case total > limit:
		return failed(errBodyTooLarge)
	}
	r.Body = io.NopCloser(io.NewSectionReader(f, 0, total))
	r.ContentLength = total
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(f, 0, total)), nil }
	p.log.Debug("deviceproxy: upload spooled", "device", p.d.ID, "bytes", total)
	return cleanup, 0, nil
}

// onlyWriter hides ReadFrom, so io.CopyBuffer uses the pooled buffer.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }
