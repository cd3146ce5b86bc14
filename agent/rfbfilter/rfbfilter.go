// Package rfbfilter makes a VNC session view-only at the agent: it parses
// what the viewer sends to the device's RFB server (RFC 6143) and passes
// only what keeps the picture coming, so no key, pointer, clipboard or
// resize reaches the device whatever the browser side does.
//
// The viewer's side of the handshake passes (version, security type, the
// VNC authentication response, ClientInit, whose shared flag is forced on
// so a view-only viewer never disconnects the others). After it, client
// messages are a type byte and a body of fixed or prefixed length:
// SetPixelFormat (0), SetEncodings (2), FramebufferUpdateRequest (3),
// EnableContinuousUpdates (150) and Fence (248) pass; KeyEvent (4),
// PointerEvent (5), ClientCutText (6), XVP (250), SetDesktopSize (251)
// and QEMU key events (255/0) are dropped. Anything else stops the stream
// (fail closed): its length is unknown, so nothing after it can be
// trusted to be a message boundary.
//
// The filter is streaming: a message may arrive in any number of pieces.
// It keeps at most a message header (12 bytes); bodies pass or are skipped
// as they arrive, so a 2 GiB ClientCutText is skipped without a buffer.
package rfbfilter

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrRefused is wrapped by every error of the filter: the stream must stop.
var ErrRefused = errors.New("view-only VNC")

// Security types the filter can follow (RFC 6143 7.2): their client side
// is known. Others (VeNCrypt, TLS, Tight, …) wrap or reshape the stream.
const (
	securityNone    = 1
	securityVNCAuth = 2
)

type state int

const (
	stVersion  state = iota // 12 bytes "RFB 003.008\n"
	stSecurity              // 1 byte: the chosen type
	stInit                  // 1 byte: ClientInit's shared flag
	stHeader                // a message's type and its length-bearing header
	stBody                  // the rest of a part, passed or skipped, then next
	stStopped
)

// Filter is one viewer's stream. The zero value is ready at the start of
// the stream.
type Filter struct {
	st   state
	next state // after stBody
	hdr  [12]byte
	hlen int   // bytes of hdr filled
	left int64 // bytes of the current body still to pass or skip
	pass bool  // whether the current body passes
	err  error

	// Passed and Dropped count client messages after the handshake.
	Passed, Dropped int64
}

// Write filters p and appends what may reach the device to dst. After an
// error every further call returns it; what was appended before the
// offending message is still good to send.
func (f *Filter) Write(dst, p []byte) ([]byte, error) {
	for len(p) > 0 && f.err == nil {
		if f.st == stBody {
			n := min(int64(len(p)), f.left)
			if f.pass {
				dst = append(dst, p[:n]...)
			}
			p = p[n:]
			if f.left -= n; f.left == 0 {
				f.st = f.next
			}
			continue
		}
		need := f.need()
		if need < 0 {
			break
		}
		k := copy(f.hdr[f.hlen:need], p)
		f.hlen += k
		p = p[k:]
		if f.hlen < need {
			break // the rest of the header comes with the next piece
		}
		// The header needed may grow once its first bytes are known.
		if more := f.need(); more < 0 || more > f.hlen {
			continue
		}
		dst = f.complete(dst)
	}
	return dst, f.err
}

// need is how many header bytes the current state needs with what is
// known so far, or -1 after setting an error.
func (f *Filter) need() int {
	switch f.st {
	case stVersion:
		return 12
	case stSecurity, stInit:
		return 1
	case stHeader:
		if f.hlen == 0 {
			return 1
		}
		switch t := f.hdr[0]; t {
		case 0, 3, 4, 5, 150, 250:
			return 1
		case 2: // SetEncodings: type, pad, count(2)
			return 4
		case 6, 251: // ClientCutText: type, pad(3), length(4); SetDesktopSize: type, pad, w(2), h(2), count, pad
			return 8
		case 248: // Fence: type, pad(3), flags(4), length(1)
			return 9
		case 255: // QEMU: type, subtype
			return 2
		default:
			f.fail("the viewer sent message type %d, which view-only mode cannot follow", t)
			return -1
		}
	}
	f.fail("internal: no header in state %d", f.st)
	return -1
}

func (f *Filter) fail(format string, a ...any) {
	f.err = fmt.Errorf("%w: "+format, append([]any{ErrRefused}, a...)...)
	f.st = stStopped
}

// body makes the next n bytes pass or be skipped, then moves to next.
func (f *Filter) body(n int64, pass bool, next state) {
	f.st, f.left, f.pass, f.next = stBody, n, pass, next
	if n == 0 {
		f.st = next
	}
}

// complete acts on a full header.
func (f *Filter) complete(dst []byte) []byte {
	h := f.hdr[:f.hlen]
	f.hlen = 0
	switch f.st {
	case stVersion:
		v := string(h)
		if v[:4] != "RFB " || v[11] != '\n' || v[7] != '.' {
			f.fail("the viewer's protocol version %q is not RFB", v)
			return dst
		}
		if v == "RFB 003.003\n" {
			// In 3.3 the server picks the security type and the client
			// says nothing: the filter cannot see which was picked.
			f.fail("RFB 3.3 is not supported in view-only mode")
			return dst
		}
		f.st = stSecurity
		return append(dst, h...)
	case stSecurity:
		switch h[0] {
		case securityNone:
			f.st = stInit
		case securityVNCAuth:
			f.body(16, true, stInit) // the response to the challenge
		default:
			f.fail("security type %d cannot be followed in view-only mode (use VNC authentication or none)", h[0])
			return dst
		}
		return append(dst, h...)
	case stInit:
		f.st = stHeader
		return append(dst, 1) // shared: never disconnect the other viewers
	}
	var total int64
	pass := false
	switch h[0] {
	case 0: // SetPixelFormat
		total, pass = 20, true
	case 2: // SetEncodings
		total, pass = 4+4*int64(binary.BigEndian.Uint16(h[2:4])), true
	case 3, 150: // FramebufferUpdateRequest, EnableContinuousUpdates
		total, pass = 10, true
	case 248: // Fence
		total, pass = 9+int64(h[8]), true
	case 4: // KeyEvent
		total = 8
	case 5: // PointerEvent
		total = 6
	case 250: // XVP
		total = 4
	case 6: // ClientCutText; a negative length is the extended clipboard's
		n := int64(int32(binary.BigEndian.Uint32(h[4:8])))
		if n < 0 {
			n = -n
		}
		total = 8 + n
	case 251: // SetDesktopSize
		total = 8 + 16*int64(h[6])
	case 255:
		if h[1] != 0 {
			f.fail("QEMU message subtype %d cannot be followed in view-only mode", h[1])
			return dst
		}
		total = 12 // QEMU extended key event
	}
	if pass {
		f.Passed++
		dst = append(dst, h...)
	} else {
		f.Dropped++
	}
	f.body(total-int64(len(h)), pass, stHeader)
	return dst
}
