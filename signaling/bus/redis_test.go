package bus_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/bus"
)

// TestRedisBus runs the bus's behaviour against one redis-server.
func TestRedisBus(t *testing.T) {
	addr := testenv.StartRedis(t)
	testRedisBus(t, func() redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: addr}) }, "t"+rand.Text()+":")
}

// TestRedisBusOnCluster runs it against a real Redis Cluster of three
// primaries, under a prefix whose hash tag puts every key of the bus on one
// slot (its scripts touch several keys).
func TestRedisBusOnCluster(t *testing.T) {
	nodes := testenv.StartRedisCluster(t, 3)
	addrs := []string{nodes[0].Addr, nodes[1].Addr, nodes[2].Addr}
	testRedisBus(t, func() redis.UniversalClient { return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs}) }, "{t"+rand.Text()+"}:")
}

func testRedisBus(t *testing.T, client func() redis.UniversalClient, prefix string) {
	ctx := context.Background()
	node := func(name string, deliver func([]byte)) *bus.Redis {
		rdb := client()
		t.Cleanup(func() { rdb.Close() })
		b, err := bus.NewRedis(rdb, bus.RedisOptions{Node: name, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		b.Start(deliver)
		t.Cleanup(func() { b.Close() })
		return b
	}
	got := make(chan string, 1000)
	a := node("a", func([]byte) {})
	b := node("b", func(m []byte) { got <- string(m) })

	// Messages arrive in order once b's subscription is up: send a probe
	// until one arrives, then a numbered run.
	testenv.Eventually(t, 10*time.Second, "b's subscription", func() bool {
		a.Send("b", []byte("probe"))
		select {
		case <-got:
			return true
		default:
			return false
		}
	})
	for i := range 100 {
		if !a.Send("b", fmt.Appendf(nil, "m%d", i)) {
			t.Fatal("send refused")
		}
	}
	for i := 0; i < 100; {
		select {
		case m := <-got:
			if m == "probe" {
				continue
			}
			if want := fmt.Sprintf("m%d", i); m != want {
				t.Fatalf("message %d = %q, want %q", i, m, want)
			}
			i++
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not delivered", i)
		}
	}

	testenv.Eventually(t, 10*time.Second, "a and b alive to each other", func() bool { return a.Alive("b") && b.Alive("a") })
	if a.Alive("nobody") {
		t.Fatal("an unknown node is alive")
	}

	a.SetAgent("ag1", []proto.Device{{ID: "d1"}, {ID: "d2"}}, true)
	testenv.Eventually(t, 10*time.Second, "ag1 online on a, seen from b", func() bool {
		p, ok, err := b.Device(ctx, "d2")
		return err == nil && ok && p.Agent == "ag1" && p.Node == "a"
	})
	// The newest claim wins.
	b.SetAgent("ag1", []proto.Device{{ID: "d1"}}, true)
	testenv.Eventually(t, 10*time.Second, "ag1 claimed by b", func() bool {
		ps, err := a.Agents(ctx)
		return err == nil && len(ps) == 1 && ps[0].Node == "b"
	})
	b.SetAgent("ag1", nil, false)
	testenv.Eventually(t, 10*time.Second, "ag1 offline", func() bool {
		ps, err := a.Agents(ctx)
		return err == nil && len(ps) == 0
	})

	h := sha256.Sum256([]byte("token"))
	if err := a.PutSession(ctx, "s1", time.Now().Add(time.Minute), h); err != nil {
		t.Fatal(err)
	}
	if n, ok, err := b.SessionNode(ctx, "s1"); err != nil || !ok || n != "a" {
		t.Fatalf("SessionNode = %q %v %v", n, ok, err)
	}
	if s, n, ok, err := b.TokenSession(ctx, h); err != nil || !ok || s != "s1" || n != "a" {
		t.Fatalf("TokenSession = %q %q %v %v", s, n, ok, err)
	}
	if _, ok, err := b.SessionNode(ctx, "s2"); err != nil || ok {
		t.Fatalf("unknown session: %v %v", ok, err)
	}
}
