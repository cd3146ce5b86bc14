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

func TestFramePoolBorrowAndReturn(t *testing.T) {
	p := NewFrames()
	if p.Size() != proto.MaxFrame {
		t.Fatalf("frame pool size %d, want %d", p.Size(), proto.MaxFrame)
	}
	bp := p.Borrow()
	if len(*bp) != proto.MaxFrame {
		t.Fatalf("borrowed %d bytes, want %d", len(*bp), proto.MaxFrame)
	}
	*bp = append((*bp)[:0], "frame"...) // the tunnel's use: append a frame into it
	p.Return(bp)
	if got := p.Borrow(); len(*got) != proto.MaxFrame {
		t.Fatalf("borrowed %d bytes after Return of a short slice, want %d", len(*got), proto.MaxFrame)
	}
	small := make([]byte, 10)
	p.Return(&small) // too small: dropped
	for range 4 {
		if got := p.Borrow(); len(*got) != proto.MaxFrame {
			t.Fatalf("lent a %d-byte buffer", len(*got))
		}
	}
}
