package demodevice

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestFirmwareReaderIsDeterministicAndPrefixStable(t *testing.T) {
	for _, size := range []int64{0, 1, 7, 8, 9, 1000, 65537} {
		a, _ := io.ReadAll(FirmwareReader(size))
		b, _ := io.ReadAll(FirmwareReader(size))
		if int64(len(a)) != size || !bytes.Equal(a, b) {
			t.Fatalf("size %d: len %d, equal %v", size, len(a), bytes.Equal(a, b))
		}
		big, _ := io.ReadAll(FirmwareReader(size + 100))
		if !bytes.Equal(big[:size], a) {
			t.Fatalf("size %d is not a prefix of size %d", size, size+100)
		}
	}
	// Pinned so that an accidental change of the generator shows up.
	if got := FirmwareSHA256(1 << 20); got != pinnedSHA1MiB {
		t.Fatalf("1 MiB sha256 %s, want %s", got, pinnedSHA1MiB)
	}
}

const pinnedSHA1MiB = "d50d0d6a04ecc68bb82e4228fa76a672f9bd13bc4615852ae4b8918fc89fa59f"

func TestFirmwareReadAtMatchesSequentialRead(t *testing.T) {
	const size = 10_000
	all, _ := io.ReadAll(FirmwareReader(size))
	img := NewFirmwareImage(size)
	for _, tc := range []struct{ off, n int }{{0, 1}, {3, 5}, {5, 20}, {9_990, 10}, {9_995, 10}, {1234, 4321}} {
		p := make([]byte, tc.n)
		n, err := img.ReadAt(p, int64(tc.off))
		want := all[tc.off:min(tc.off+tc.n, size)]
		if n != len(want) || !bytes.Equal(p[:n], want) {
			t.Fatalf("ReadAt(%d,%d) = %d, %v", tc.off, tc.n, n, err)
		}
		if (tc.off+tc.n > size) != (err == io.EOF) {
			t.Fatalf("ReadAt(%d,%d) err %v", tc.off, tc.n, err)
		}
	}
}

func TestFirmwareEndpoints(t *testing.T) {
	_, srv := newServer(t, Config{})
	tests := []struct {
		query  string
		size   int64
		status int
	}{
		{"?size=0", 0, 200},
		{"?size=12345", 12345, 200},
		{"?size=3000000", 3000000, 200},
		{"?size=-1", 0, 400},
		{"?size=abc", 0, 400},
		{fmt.Sprintf("?size=%d", MaxFirmwareSize+1), 0, 400},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, err := srv.Client().Get(srv.URL + "/firmware.bin" + tt.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status != 200 {
				return
			}
			if resp.ContentLength != tt.size || resp.Header.Get("Content-Type") != "application/octet-stream" {
				t.Fatalf("Content-Length %d Content-Type %q", resp.ContentLength, resp.Header.Get("Content-Type"))
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if err != nil || n != tt.size {
				t.Fatalf("read %d, %v", n, err)
			}
			got := hex.EncodeToString(h.Sum(nil))
			_, shaBody := get(t, srv.Client(), srv.URL+"/firmware.sha256"+tt.query)
			if got != shaBody || got != FirmwareSHA256(tt.size) {
				t.Fatalf("download %s, endpoint %s, helper %s", got, shaBody, FirmwareSHA256(tt.size))
			}
		})
	}
}

func TestFirmwareDefaultSizeAndRange(t *testing.T) {
	_, srv := newServer(t, Config{})
	req, _ := http.NewRequest("HEAD", srv.URL+"/firmware.bin", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength != DefaultFirmwareSize {
		t.Fatalf("default Content-Length %d", resp.ContentLength)
	}
	resp, body := get(t, srv.Client(), srv.URL+"/firmware.bin?size=1000", "Range", "bytes=100-199")
	want, _ := io.ReadAll(io.NewSectionReader(NewFirmwareImage(1000), 100, 100))
	if resp.StatusCode != http.StatusPartialContent || body != string(want) {
		t.Fatalf("range: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

func TestCancelledFirmwareDownloadReleasesConnection(t *testing.T) {
	d, srv := newServer(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/firmware.bin?size=1073741824", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	waitFor(t, func() bool {
		s := d.Stats().Snapshot()
		return s.OpenConns == 0 && s.InFlight == 0 && s.Aborted == 1
	})
}

func TestFirmwareSHAOfEmpty(t *testing.T) {
	if got := FirmwareSHA256(0); got != sha(nil) || !strings.HasPrefix(got, "e3b0c442") {
		t.Fatalf("empty sha %s", got)
	}
}

func BenchmarkFirmwareReader(b *testing.B) {
	buf := make([]byte, 32<<10)
	r := NewFirmwareImage(1 << 62)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		_, _ = r.Read(buf)
	}
}
