package tunnel

import (
	"context"
	"io"
	"time"

	"github.com/porthole-dev/porthole/proto"
)

// PipeGrace is how long Pipe lets the second direction run on after the
// first one ended cleanly.
const PipeGrace = 30 * time.Second

// closeWriter is a stream that can half-close (*net.TCPConn, *Stream).
type closeWriter interface{ CloseWrite() error }

// Pipe copies a→b and b→a, each in its own goroutine, until both
// directions ended, ctx ended, or PipeGrace passed after the first
// direction ended cleanly. When a direction reaches EOF it half-closes its
// destination (CloseWrite when available, else Close). It closes a and b
// before returning and returns the first error other than EOF.
func Pipe(ctx context.Context, a, b io.ReadWriteCloser) error {
	errc := make(chan error, 2)
	go pipeForward(a, b, errc)
	go pipeBackward(a, b, errc)

	var (
		first error
		done  int
		timer *time.Timer
		grace <-chan time.Time
	)
loop:
	for done < 2 {
		select {
		case err := <-errc:
			done++
			if err != nil {
				first = err
				break loop
			}
			if timer == nil {
				timer = time.NewTimer(PipeGrace)
				grace = timer.C
			}
		case <-ctx.Done():
			first = ctx.Err()
			break loop
		case <-grace:
			break loop
		}
	}
	if timer != nil {
		timer.Stop()
	}
	_ = a.Close()
	_ = b.Close()
	for ; done < 2; done++ {
		<-errc // the copiers stop once both ends are closed
	}
	return first
}

func pipeForward(a, b io.ReadWriteCloser, errc chan<- error)  { errc <- copyHalf(b, a) }
func pipeBackward(a, b io.ReadWriteCloser, errc chan<- error) { errc <- copyHalf(a, b) }

// copyHalf copies src to dst and half-closes dst on EOF. Its buffer of
// one chunk lives as long as the pipe, which lives as long as its
// connection, so it is allocated here rather than lent by a pool.
func copyHalf(dst, src io.ReadWriteCloser) error {
	_, err := io.CopyBuffer(writerOnly{dst}, readerOnly{src}, make([]byte, proto.MaxChunk))
	if err != nil {
		return err
	}
	if cw, ok := dst.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return dst.Close()
}

// readerOnly and writerOnly hide ReadFrom/WriteTo so CopyBuffer uses the
// given buffer.
type readerOnly struct{ io.Reader }
type writerOnly struct{ io.Writer }
