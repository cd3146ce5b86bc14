// Package bufpool lends byte buffers of one size: copy buffers of one
// tunnel chunk (proto.MaxChunk) to httputil.ReverseProxy and to the
// tunnel's own body and stream copies, and frame buffers (proto.MaxFrame)
// in which the tunnel assembles outgoing frames, so that neither allocates
// a fresh buffer per request or frame. Each owner (a tunnel Client or
// Session, a device proxy, a technician session) holds its own Pools: no
// pool is package state.
package bufpool

import (
	"net/http/httputil"
	"sync"

	"github.com/porthole-dev/porthole/proto"
)

// Pool is an httputil.BufferPool of buffers of one size.
type Pool struct {
	size int
	p    sync.Pool
}

var _ httputil.BufferPool = (*Pool)(nil)

// New returns an empty pool of proto.MaxChunk buffers, for body and stream
// copies.
func New() *Pool { return NewSize(proto.MaxChunk) }

// NewFrames returns an empty pool of proto.MaxFrame buffers, for
// assembling outgoing tunnel frames (a head frame may be twice a chunk).
func NewFrames() *Pool { return NewSize(proto.MaxFrame) }

// NewSize returns an empty pool of buffers of size bytes.
func NewSize(size int) *Pool {
	p := &Pool{size: size}
	p.p.New = func() any { b := make([]byte, size); return &b }
	return p
}

// Size is the length of the buffers the pool lends.
func (p *Pool) Size() int { return p.size }

// Get returns a buffer of Size bytes.
func (p *Pool) Get() []byte { return *p.Borrow() }

// Put returns buf to the pool; buffers smaller than Size are dropped.
func (p *Pool) Put(buf []byte) {
	if cap(buf) < p.size {
		return
	}
	buf = buf[:p.size]
	p.p.Put(&buf)
}

// Borrow is Get for hot paths: the buffer behind a pointer, which Return
// takes back without allocating (Put allocates the slice header it
// stores). Whoever holds it may re-slice *bp freely.
func (p *Pool) Borrow() *[]byte { return p.p.Get().(*[]byte) }

// Return gives back a buffer lent by Borrow; one whose capacity shrank
// below Size is dropped.
func (p *Pool) Return(bp *[]byte) {
	if cap(*bp) < p.size {
		return
	}
	*bp = (*bp)[:p.size]
	p.p.Put(bp)
}
