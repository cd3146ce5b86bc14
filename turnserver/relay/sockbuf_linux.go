//go:build linux

package relay

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// setSocketBuffers asks for size bytes of receive and send buffer on c.
// It tries SO_RCVBUFFORCE/SO_SNDBUFFORCE first (CAP_NET_ADMIN: past
// net.core.rmem_max/wmem_max), then SO_RCVBUF/SO_SNDBUF (capped at those
// limits), and returns what getsockopt reports afterwards: Linux doubles
// the value asked for to cover its bookkeeping, so a granted request reads
// back as 2×size.
func setSocketBuffers(c syscall.RawConn, size int) (bufferSizes, error) {
	var got bufferSizes
	var serr error
	err := c.Control(func(fd uintptr) {
		set := func(force, plain int) error {
			err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, force, size)
			if errors.Is(err, unix.EPERM) {
				err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, plain, size)
			}
			return err
		}
		serr = errors.Join(set(unix.SO_RCVBUFFORCE, unix.SO_RCVBUF), set(unix.SO_SNDBUFFORCE, unix.SO_SNDBUF))
		var gerr [2]error
		got.Recv, gerr[0] = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		got.Send, gerr[1] = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
		serr = errors.Join(serr, gerr[0], gerr[1])
	})
	if err != nil {
		return got, fmt.Errorf("socket buffers: %w", err)
	}
	if serr != nil {
		return got, fmt.Errorf("socket buffers: %w", serr)
	}
	return got, nil
}

// kernelBufferFactor is how many times the size asked for getsockopt
// reports once a request is granted in full.
const kernelBufferFactor = 2
