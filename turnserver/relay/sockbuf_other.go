//go:build !linux

package relay

import (
	"errors"
	"syscall"
)

// setSocketBuffers is only implemented on Linux; elsewhere the caller
// falls back to net.UDPConn's SetReadBuffer/SetWriteBuffer.
func setSocketBuffers(syscall.RawConn, int) (bufferSizes, error) {
	return bufferSizes{}, errors.ErrUnsupported
}

// kernelBufferFactor is how many times the size asked for getsockopt
// reports once a request is granted in full.
const kernelBufferFactor = 1
