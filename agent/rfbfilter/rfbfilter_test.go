package rfbfilter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// Client messages as noVNC and TigerVNC's viewer send them.
var (
	version     = []byte("RFB 003.008\n")
	setPixFmt   = append([]byte{0, 0, 0, 0}, make([]byte, 16)...)
	setEncs     = []byte{2, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 1, 0xff, 0xff, 0xfe, 0xcc}
	fbUpdate    = []byte{3, 1, 0, 0, 0, 0, 4, 0, 3, 0}
	contUpdates = []byte{150, 1, 0, 0, 0, 0, 4, 0, 3, 0}
	fence       = []byte{248, 0, 0, 0, 0, 0, 0, 3, 2, 'h', 'i'}
	keyDown     = []byte{4, 1, 0, 0, 0, 0, 0, 'a'}
	pointer     = []byte{5, 1, 0, 10, 0, 20}
	xvp         = []byte{250, 0, 1, 2}
	desktopSize = append([]byte{251, 0, 4, 0, 3, 0, 1, 0}, make([]byte, 16)...)
	qemuKey     = []byte{255, 0, 0, 1, 0, 0, 0, 'a', 0, 0, 0, 30}
)

func cutText(text string, extended bool) []byte {
	n := int32(len(text))
	if extended {
		n = -n
	}
	b := binary.BigEndian.AppendUint32([]byte{6, 0, 0, 0}, uint32(n))
	return append(b, text...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// handshake is a viewer's side of a VNC-authenticated handshake with the
// exclusive ClientInit flag (0) that the filter turns to shared (1).
func handshake() []byte {
	return cat(version, []byte{securityVNCAuth}, bytes.Repeat([]byte{0xaa}, 16), []byte{0})
}

func sharedHandshake() []byte {
	return cat(version, []byte{securityVNCAuth}, bytes.Repeat([]byte{0xaa}, 16), []byte{1})
}

func TestFilter(t *testing.T) {
	cases := []struct {
		name          string
		in, want      []byte
		passed, drops int64
		err           string
	}{
		{"picture messages pass",
			cat(handshake(), setPixFmt, setEncs, fbUpdate, contUpdates, fence),
			cat(sharedHandshake(), setPixFmt, setEncs, fbUpdate, contUpdates, fence), 5, 0, ""},
		{"input is dropped between picture messages",
			cat(handshake(), fbUpdate, keyDown, pointer, fbUpdate, cutText("secret clipboard", false), xvp, desktopSize, qemuKey, fbUpdate),
			cat(sharedHandshake(), fbUpdate, fbUpdate, fbUpdate), 3, 6, ""},
		{"extended clipboard (negative length) is dropped",
			cat(handshake(), cutText("zlib-compressed clipboard", true), fbUpdate),
			cat(sharedHandshake(), fbUpdate), 1, 1, ""},
		{"security none",
			cat(version, []byte{securityNone, 0}, fbUpdate, keyDown),
			cat(version, []byte{securityNone, 1}, fbUpdate), 1, 1, ""},
		{"an unknown message stops the stream after what came before",
			cat(handshake(), fbUpdate, []byte{77, 1, 2, 3}, fbUpdate),
			cat(sharedHandshake(), fbUpdate), 1, 0, "message type 77"},
		{"a QEMU message other than a key event stops",
			cat(handshake(), []byte{255, 1, 0, 0}),
			sharedHandshake(), 0, 0, "QEMU message subtype 1"},
		{"RFB 3.3 is refused", cat([]byte("RFB 003.003\n"), fbUpdate), nil, 0, 0, "RFB 3.3"},
		{"not RFB", []byte("GET / HTTP/1.1\r\n\r\n"), nil, 0, 0, "is not RFB"},
		{"VeNCrypt is refused", cat(version, []byte{19}), version, 0, 0, "security type 19"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Every way of cutting the stream in two gives the same result.
			for cut := 0; cut <= len(c.in); cut++ {
				var f Filter
				out, err1 := f.Write(nil, c.in[:cut])
				var err2 error
				if err1 == nil {
					out, err2 = f.Write(out, c.in[cut:])
				}
				err := errors.Join(err1, err2)
				if !bytes.Equal(out, c.want) {
					t.Fatalf("cut at %d: passed\n%v\nwant\n%v", cut, out, c.want)
				}
				switch {
				case c.err == "" && err != nil:
					t.Fatalf("cut at %d: %v", cut, err)
				case c.err != "" && (!errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.err)):
					t.Fatalf("cut at %d: err %v, want %q", cut, err, c.err)
				}
				if f.Passed != c.passed || f.Dropped != c.drops {
					t.Fatalf("cut at %d: passed %d dropped %d, want %d and %d", cut, f.Passed, f.Dropped, c.passed, c.drops)
				}
			}
		})
	}
}

// One byte at a time is the extreme of pieces: the result is the same.
func TestFilterByteAtATime(t *testing.T) {
	in := cat(handshake(), setEncs, keyDown, cutText(strings.Repeat("x", 70000), false), fence, pointer, fbUpdate)
	var f Filter
	var out []byte
	for i := range in {
		var err error
		if out, err = f.Write(out, in[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if want := cat(sharedHandshake(), setEncs, fence, fbUpdate); !bytes.Equal(out, want) {
		t.Fatalf("got %d bytes, want %d", len(out), len(want))
	}
}

// A clipboard message that says 2 GiB is skipped as it comes, without a
// buffer of that size.
func TestFilterHugeClipboardIsSkippedWithoutBuffering(t *testing.T) {
	var f Filter
	hdr := binary.BigEndian.AppendUint32([]byte{6, 0, 0, 0}, 1<<31-1)
	out, err := f.Write(nil, cat(handshake(), hdr))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for range 64 {
		if out, err = f.Write(out, chunk); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out, sharedHandshake()) {
		t.Fatalf("passed %d bytes of a skipped message", len(out)-len(sharedHandshake()))
	}
	if f.left != 1<<31-1-64<<20 {
		t.Fatalf("left %d", f.left)
	}
}

// reference splits a filtered stream into messages after the handshake,
// the way an RFB server reads it, and reports any input message.
func inputIn(out []byte) (string, bool) {
	i := len(sharedHandshake())
	for i < len(out) {
		var n int
		switch out[i] {
		case 0:
			n = 20
		case 2:
			n = 4 + 4*int(binary.BigEndian.Uint16(out[i+2:]))
		case 3, 150:
			n = 10
		case 248:
			n = 9 + int(out[i+8])
		default:
			return "type " + string(rune('0'+out[i]%10)), true
		}
		i += n
	}
	return "", false
}

// FuzzFilter: whatever the viewer sends after a good handshake, in any
// pieces, what reaches the server parses as picture messages only and is
// the same however the stream was cut.
func FuzzFilter(f *testing.F) {
	f.Add(cat(fbUpdate, keyDown, pointer), 3)
	f.Add(cat(cutText("abc", true), setEncs, fence), 5)
	f.Add(cat(desktopSize, qemuKey, contUpdates, setPixFmt), 17)
	f.Add([]byte{2, 0, 0xff, 0xff}, 1)
	f.Fuzz(func(t *testing.T, msgs []byte, cut int) {
		in := cat(handshake(), msgs)
		var whole Filter
		want, _ := whole.Write(nil, in)
		if cut < 0 {
			cut = -cut
		}
		cut %= len(in) + 1
		var parts Filter
		got, err := parts.Write(nil, in[:cut])
		if err == nil {
			got, _ = parts.Write(got, in[cut:])
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("cut at %d changes the result", cut)
		}
		if !bytes.HasPrefix(got, sharedHandshake()) {
			t.Fatal("the handshake did not pass")
		}
		if what, bad := inputIn(got); bad {
			t.Fatalf("input reached the server: %s", what)
		}
	})
}
