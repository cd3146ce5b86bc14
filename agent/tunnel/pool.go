package tunnel

import (
	"context"
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"
)

// ClientStats counts a client's data channels.
type ClientStats struct {
	Opened    int64 // data channels created since NewClient
	Dropped   int64 // channels closed after a failed exchange
	Live      int   // channels opening, idle or busy
	Idle      int   // channels waiting in the pool
	Exchanges int64 // exchanges started
}

// Stats returns the client's counters.
func (c *Client) Stats() ClientStats {
	return ClientStats{
		Opened:    c.opened.Load(),
		Dropped:   c.dropped.Load(),
		Live:      len(c.tokens),
		Idle:      len(c.idle),
		Exchanges: c.exchanges.Load(),
	}
}

// open creates a data channel; once open it joins the idle pool. The
// caller holds a token for it.
func (c *Client) open() error {
	ordered := true
	dc, err := c.pc.CreateDataChannel(Label, &webrtc.DataChannelInit{Ordered: &ordered})
	if err != nil {
		return fmt.Errorf("tunnel: create data channel: %w", err)
	}
	c.opened.Add(1)
	dc.OnOpen(func() {
		defer c.changed()
		c.opening.Add(-1)
		ch, err := Detach(dc, c.frames)
		if err != nil {
			c.log.Warn("tunnel: open data channel", "err", err)
			_ = dc.Close()
			<-c.tokens
			return
		}
		c.mu.Lock()
		select {
		case <-c.closed:
			c.mu.Unlock()
			ch.Close()
			<-c.tokens
			return
		default:
		}
		c.live[ch] = struct{}{}
		c.mu.Unlock()
		c.idle <- ch
	})
	return nil
}

// get returns an idle channel. It opens a new one only while fewer
// channels are opening than callers are waiting, within the cap; else it
// waits for one to come back.
func (c *Client) get(ctx context.Context) (*Channel, error) {
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	for {
		changed := c.changedSignal()
		select {
		case ch := <-c.idle:
			if c.usable(ch) {
				return ch, nil
			}
			continue
		default:
		}
		if c.opening.Load() < c.waiting.Load() {
			select {
			case c.tokens <- struct{}{}:
				c.opening.Add(1)
				if err := c.open(); err != nil {
					c.opening.Add(-1)
					<-c.tokens
					return nil, err
				}
				continue
			default:
			}
		}
		select {
		case ch := <-c.idle:
			if c.usable(ch) {
				return ch, nil
			}
			continue
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closed:
			return nil, ErrClientClosed
		}
	}
}

// usable reports whether an idle channel taken from the pool is still
// open; a closed one is dropped.
func (c *Client) usable(ch *Channel) bool {
	if ch.isClosed() {
		c.drop(ch)
		return false
	}
	return true
}

// changedSignal returns a channel closed at the next change of the pool
// (a slot freed or an open finished).
func (c *Client) changedSignal() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changedCh
}

func (c *Client) changed() {
	c.mu.Lock()
	close(c.changedCh)
	c.changedCh = make(chan struct{})
	c.mu.Unlock()
}

// put returns a channel whose exchange completed to the pool.
func (c *Client) put(ch *Channel) {
	ch.setReadDeadline(time.Time{})
	select {
	case <-c.closed:
		c.drop(ch)
		return
	default:
	}
	c.idle <- ch
}

// drop closes a channel and frees its slot.
func (c *Client) drop(ch *Channel) {
	ch.Close()
	c.mu.Lock()
	_, ok := c.live[ch]
	delete(c.live, ch)
	c.mu.Unlock()
	if ok {
		c.dropped.Add(1)
		<-c.tokens
		c.changed()
	}
}
