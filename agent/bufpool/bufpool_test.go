package bufpool

import (
	"testing"

	"github.com/porthole-dev/porthole/proto"
)

func TestPoolLendsChunkSizedBuffers(t *testing.T) {
	p := New()
	b := p.Get()
	if len(b) != proto.MaxChunk {
		t.Fatalf("buffer of %d bytes, want %d", len(b), proto.MaxChunk)
	}
	p.Put(b[:10]) // a shortened buffer comes back at full length
	if got := p.Get(); len(got) != proto.MaxChunk {
		t.Fatalf("buffer of %d bytes after Put of a slice, want %d", len(got), proto.MaxChunk)
	}
	p.Put(make([]byte, 100)) // too small: dropped, never lent out
	for range 4 {
		if got := p.Get(); len(got) != proto.MaxChunk {
			t.Fatalf("lent a %d-byte buffer", len(got))
		}
	}
}
