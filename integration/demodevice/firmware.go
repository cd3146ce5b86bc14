package demodevice

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Firmware image sizes.
const (
	DefaultFirmwareSize int64 = 256 << 20
	MaxFirmwareSize     int64 = 1 << 30
)

// firmwareSeed keys the firmware byte stream ("Porthole" in ASCII).
const firmwareSeed uint64 = 0x506f7274686f6c65

// firmwareWord returns the 8 bytes of the firmware stream at byte offset 8*i: a SplitMix64 output
// keyed on the word index, so any range can be produced without producing what precedes it.
func firmwareWord(i uint64) uint64 {
	z := firmwareSeed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// fillFirmware writes the firmware stream's bytes at [off, off+len(p)) into p.
func fillFirmware(p []byte, off int64) {
	// Unaligned head.
	if r := off % 8; r != 0 && len(p) > 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], firmwareWord(uint64(off/8)))
		n := copy(p, b[r:])
		p, off = p[n:], off+int64(n)
	}
	i := uint64(off / 8)
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, firmwareWord(i))
		p, i = p[8:], i+1
	}
	if len(p) > 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], firmwareWord(i))
		copy(p, b[:])
	}
}

// FirmwareImage is the firmware byte stream of a given size. The bytes depend only on their
// offset, so an image of size N is the first N bytes of any larger one.
type FirmwareImage struct {
	size, off int64
}

var (
	_ io.ReadSeeker = (*FirmwareImage)(nil)
	_ io.ReaderAt   = (*FirmwareImage)(nil)
)

// FirmwareReader returns a reader of the size-byte firmware image served by /firmware.bin.
// It also implements io.Seeker and io.ReaderAt. A negative size counts as zero.
func FirmwareReader(size int64) io.Reader {
	return NewFirmwareImage(size)
}

// NewFirmwareImage is FirmwareReader with its concrete type.
func NewFirmwareImage(size int64) *FirmwareImage {
	return &FirmwareImage{size: max(size, 0)}
}

// Size returns the image's length in bytes.
func (f *FirmwareImage) Size() int64 { return f.size }

// Read implements io.Reader.
func (f *FirmwareImage) Read(p []byte) (int, error) {
	if f.off >= f.size {
		return 0, io.EOF
	}
	if rem := f.size - f.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	fillFirmware(p, f.off)
	f.off += int64(len(p))
	return len(p), nil
}

// ReadAt implements io.ReaderAt.
func (f *FirmwareImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("firmware: negative offset")
	}
	if off >= f.size {
		return 0, io.EOF
	}
	n := len(p)
	if rem := f.size - off; int64(n) > rem {
		n = int(rem)
	}
	fillFirmware(p[:n], off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Seek implements io.Seeker.
func (f *FirmwareImage) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = f.off + offset
	case io.SeekEnd:
		abs = f.size + offset
	default:
		return 0, errors.New("firmware: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("firmware: negative position")
	}
	f.off = abs
	return abs, nil
}

// FirmwareSHA256 returns the hex SHA-256 of the size-byte firmware image.
func FirmwareSHA256(size int64) string {
	h := sha256.New()
	buf := make([]byte, 256<<10)
	_, _ = io.CopyBuffer(h, FirmwareReader(size), buf)
	return hex.EncodeToString(h.Sum(nil))
}

// firmwareSize reads the size query parameter.
func firmwareSize(r *http.Request) (int64, error) {
	v := r.URL.Query().Get("size")
	if v == "" {
		return DefaultFirmwareSize, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > MaxFirmwareSize {
		return 0, fmt.Errorf("size must be an integer from 0 to %d", MaxFirmwareSize)
	}
	return n, nil
}

func (d *Device) handleFirmware(w http.ResponseWriter, r *http.Request) {
	size, err := firmwareSize(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="porthole-lj4000-fw.bin"`)
	h.Set("Cache-Control", "no-store")
	// ServeContent streams with io.CopyN, sets Content-Length and answers Range requests.
	ew := &errWriter{ResponseWriter: w}
	http.ServeContent(ew, r, "", zeroTime, NewFirmwareImage(size))
	// A write error and the request's context are two views of the client
	// going away; either may be seen first.
	if ew.failed || r.Context().Err() != nil {
		d.stats.Aborted.Add(1)
	}
}

// errWriter remembers whether a write to the client failed.
type errWriter struct {
	http.ResponseWriter
	failed bool
}

func (w *errWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	if err != nil {
		w.failed = true
	}
	return n, err
}

func (d *Device) handleFirmwareSHA(w http.ResponseWriter, r *http.Request) {
	size, err := firmwareSize(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	sum, ok := d.shaCache[size]
	d.mu.Unlock()
	if !ok {
		sum = FirmwareSHA256(size)
		d.mu.Lock()
		if len(d.shaCache) >= 64 {
			clear(d.shaCache)
		}
		d.shaCache[size] = sum
		d.mu.Unlock()
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, sum)
}
