// Package bufpool lends copy buffers of one tunnel chunk (proto.MaxChunk)
// to httputil.ReverseProxy and to the tunnel's own body and stream copies,
// so that copying a body on either end of the tunnel does not allocate a
// fresh buffer per request. Each owner (a tunnel Client or Session, a
// device proxy, a technician session) holds its own Pool: no pool is
// package state.
package bufpool

import (
	"net/http/httputil"
	"sync"

	"github.com/porthole-dev/porthole/proto"
)

// Pool is an httputil.BufferPool of proto.MaxChunk buffers.
type Pool struct{ p sync.Pool }

var _ httputil.BufferPool = (*Pool)(nil)

// New returns an empty pool.
func New() *Pool {
	return &Pool{p: sync.Pool{New: func() any { b := make([]byte, proto.MaxChunk); return &b }}}
}

// Get returns a buffer of proto.MaxChunk bytes.
func (p *Pool) Get() []byte { return *(p.p.Get().(*[]byte)) }

// Put returns buf to the pool; buffers smaller than a chunk are dropped.
func (p *Pool) Put(buf []byte) {
	if cap(buf) < proto.MaxChunk {
		return
	}
	buf = buf[:proto.MaxChunk]
	p.p.Put(&buf)
}
