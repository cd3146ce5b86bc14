package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat CPU times (USER_HZ; 100 on
// Linux everywhere that matters).
const clockTick = 10 * time.Millisecond

// procCPU returns the user+system CPU time a process has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces; fields resume after ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14 of the whole line
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * clockTick, nil
}

// selfCPU is this process's CPU time (finer than /proc).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procRSS returns a process's resident set size in bytes.
func procRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) * 8 / d.Seconds() / 1e6
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// patternReader yields n bytes of a fixed pattern without allocating.
type patternReader struct{ left int64 }

var pattern = bytes.Repeat([]byte("porthole-bench-0123456789abcdef"), 2200) // > 64 KiB

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := copy(p, pattern[:min(int64(len(p)), r.left, int64(len(pattern)))])
	r.left -= int64(n)
	return n, nil
}

// discard reads r to the end through a 64 KiB buffer.
func discard(r io.Reader) (int64, error) {
	buf := make([]byte, 64<<10)
	var n int64
	for {
		m, err := r.Read(buf)
		n += int64(m)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// backlogWaits counts requests the agent refused with audit_backlog (its
// access log to signaling was full) and that were retried.
var backlogWaits atomic.Int64

// getAll runs one GET and reads its body; it returns the latency to the
// first byte and the body size. A refusal for audit backlog (the agent's
// fail-closed access log waiting for signaling) is retried after 5 ms, at
// most 400 times, and timed from the successful attempt.
func getAll(hc *http.Client, url string) (time.Duration, int64, error) {
	for range 400 {
		d, n, err := getOnce(hc, url)
		if err == nil || !strings.Contains(err.Error(), "audit_backlog") {
			return d, n, err
		}
		backlogWaits.Add(1)
		time.Sleep(5 * time.Millisecond)
	}
	return getOnce(hc, url)
}

func getOnce(hc *http.Client, url string) (time.Duration, int64, error) {
	t0 := time.Now()
	resp, err := hc.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var one [1]byte
	n, err := io.ReadFull(resp.Body, one[:])
	ttfb := time.Since(t0)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return ttfb, int64(n), err
	}
	m, err := discard(resp.Body)
	return ttfb, int64(n) + m, err
}

// rawTCP measures loopback TCP throughput for n bytes.
func rawTCP(n int64) (float64, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		m, err := discard(c)
		if err == nil && m != n {
			err = fmt.Errorf("raw TCP: got %d of %d bytes", m, n)
		}
		got <- err
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	buf := pattern[:64<<10]
	for left := n; left > 0; {
		k := min(int64(len(buf)), left)
		if _, err := c.Write(buf[:k]); err != nil {
			c.Close()
			return 0, err
		}
		left -= k
	}
	c.Close()
	if err := <-got; err != nil {
		return 0, err
	}
	return mbps(n, time.Since(t0)), nil
}
