package redisstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/porthole-dev/porthole/internal/testenv"
	"github.com/porthole-dev/porthole/signaling/bus"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/redisstore"
	"github.com/porthole-dev/porthole/signaling/store/storetest"
)

// durable are the data nodes' settings of the README's Redis HA section:
// every write fsynced before the reply, and no write taken while no
// replica follows.
var durable = []string{"--save", "", "--appendonly", "yes", "--appendfsync", "always",
	"--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"}

// sentinelSet is one primary, one replica and three sentinels on loopback.
type sentinelSet struct {
	primary, replica *testenv.RedisProc
	sentinels        []*testenv.RedisProc
}

func startSentinelSet(t *testing.T) *sentinelSet {
	t.Helper()
	server := testenv.NeedBinary(t, "redis-server")
	sentinel := testenv.NeedBinary(t, "redis-sentinel")
	set := &sentinelSet{}
	set.primary = testenv.StartRedisProc(t, server, "", durable...)
	host, port := splitAddr(set.primary.Addr)
	set.replica = testenv.StartRedisProc(t, server, "", append(durable, "--replicaof", host, port)...)
	conf := fmt.Sprintf("sentinel monitor porthole %s %s 2\nsentinel down-after-milliseconds porthole 1000\nsentinel failover-timeout porthole 10000", host, port)
	for range 3 {
		set.sentinels = append(set.sentinels, testenv.StartRedisProc(t, sentinel, conf))
	}
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: set.replica.Addr})
	defer rc.Close()
	testenv.Eventually(t, 30*time.Second, "the replica in sync", func() bool {
		info, _ := rc.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	})
	// The primary takes writes only once it counts the replica as good
	// (min-replicas-to-write), which it updates once a second after the
	// link is up: a first write before that is refused with NOREPLICAS.
	pc := redis.NewClient(&redis.Options{Addr: set.primary.Addr})
	defer pc.Close()
	testenv.Eventually(t, 30*time.Second, "the primary counting the replica as good", func() bool {
		info, _ := pc.Info(ctx, "replication").Result()
		return strings.Contains(info, "min_slaves_good_slaves:1")
	})
	for _, s := range set.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
		testenv.Eventually(t, 30*time.Second, "each sentinel seeing the replica and the other sentinels", func() bool {
			m, err := sc.Master(ctx, "porthole").Result()
			return err == nil && m["num-slaves"] == "1" && m["num-other-sentinels"] == "2"
		})
		sc.Close()
	}
	return set
}

func splitAddr(addr string) (string, string) {
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}

// url is the Sentinel URL of the set, with extra query parameters.
func (set *sentinelSet) url(extra string) string {
	return fmt.Sprintf("redis://%s?master_name=porthole&addr=%s&addr=%s%s",
		set.sentinels[0].Addr, set.sentinels[1].Addr, set.sentinels[2].Addr, extra)
}

// awaitFailover waits until the sentinels name the replica as primary.
func (set *sentinelSet) awaitFailover(t *testing.T) {
	t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: set.sentinels[0].Addr})
	defer sc.Close()
	testenv.Eventually(t, 60*time.Second, "the sentinels promoting the replica", func() bool {
		a, err := sc.GetMasterAddrByName(context.Background(), "porthole").Result()
		return err == nil && len(a) == 2 && a[0]+":"+a[1] == set.replica.Addr
	})
}

// checkAcknowledged reads stream back and returns how many of the
// acknowledged entries are missing or changed; it fails the test if the
// chain it reads is broken.
func checkAcknowledged(t *testing.T, st store.Store, stream string, acked []store.AuditEntry) (lost int) {
	t.Helper()
	all, err := st.Audit(context.Background(), stream, 0, 0)
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	bySeq := map[uint64]string{}
	prev := ""
	for i, e := range all {
		if e.Seq != uint64(i+1) || e.Prev != prev || e.Hash != store.ChainHash(prev, e) {
			t.Fatalf("%s: chain broken at entry %d (seq %d)", stream, i, e.Seq)
		}
		bySeq[e.Seq], prev = e.Hash, e.Hash
	}
	for _, e := range acked {
		if bySeq[e.Seq] != e.Hash {
			lost++
		}
	}
	return lost
}

// TestSentinelFailoverLosesNoAcknowledgedAudit runs four audit writers and
// a bus through go-redis's failover client, SIGKILLs the primary under that
// load, and checks that the sentinels promote the replica, that the same
// store and bus carry on without being reopened, and that every entry
// AppendAudit acknowledged is in the new primary's streams, chained.
func TestSentinelFailoverLosesNoAcknowledgedAudit(t *testing.T) {
	set := startSentinelSet(t)
	st, err := redisstore.Open(set.url("&wait_replicas=1&wait_timeout=500ms"), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st2, err := redisstore.Open(set.url(""), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()

	// Two bus nodes, one per store (each its own failover client).
	a, _ := bus.NewRedis(st.Client(), bus.RedisOptions{Node: "a", Prefix: st.Prefix()})
	b, _ := bus.NewRedis(st2.Client(), bus.RedisOptions{Node: "b", Prefix: st2.Prefix()})
	got := make(chan string, bus.QueueSize)
	a.Start(func([]byte) {})
	b.Start(func(m []byte) { got <- string(m) })
	defer a.Close()
	defer b.Close()
	busWorks := func(tag string) {
		t.Helper()
		n := 0
		testenv.Eventually(t, 30*time.Second, "a bus message from a to b ("+tag+")", func() bool {
			n++
			a.Send("b", fmt.Appendf(nil, "%s-%d", tag, n))
			for {
				select {
				case m := <-got:
					if strings.HasPrefix(m, tag+"-") {
						return true
					}
				default:
					return false
				}
			}
		})
	}
	busWorks("before")

	const writers = 4
	var (
		mu       sync.Mutex
		acked    = make([][]store.AuditEntry, writers)
		attempts atomic.Int64
		failures atomic.Int64
		total    atomic.Int64
		killedAt atomic.Int64 // UnixNano
		firstAck atomic.Int64 // first acknowledgement after the kill
		afterAck atomic.Int64 // acknowledgements after the kill
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("load/%d", w)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				attempts.Add(1)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				e, err := st.AppendAudit(ctx, stream, &store.AuditEntry{Actor: "load", Action: "write", Detail: map[string]string{"i": fmt.Sprint(i)}})
				cancel()
				if err != nil {
					failures.Add(1)
					select { // back off a little while Redis is away
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				mu.Lock()
				acked[w] = append(acked[w], *e)
				mu.Unlock()
				total.Add(1)
				if k := killedAt.Load(); k != 0 {
					firstAck.CompareAndSwap(0, time.Now().UnixNano())
					afterAck.Add(1)
				}
			}
		})
	}
	testenv.Eventually(t, 30*time.Second, "200 acknowledged appends before the kill", func() bool { return total.Load() >= 200 })

	killed := time.Now()
	killedAt.Store(killed.UnixNano())
	set.primary.Kill()
	set.awaitFailover(t)
	promoted := time.Since(killed)
	// The killed primary's supervisor starts it again; the sentinels turn it
	// into a replica of the new primary, which then has the replica that
	// min-replicas-to-write and WAIT want.
	if err := set.primary.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, "200 acknowledged appends after the failover", func() bool { return afterAck.Load() >= 200 })
	close(stop)
	wg.Wait()
	busWorks("after")

	lost, n := 0, 0
	for w := range writers {
		lost += checkAcknowledged(t, st2, fmt.Sprintf("load/%d", w), acked[w])
		n += len(acked[w])
	}
	t.Logf("failover: replica promoted %s after the SIGKILL, first acknowledged append %s after it; appends attempted %d, acknowledged %d, refused %d, acknowledged but lost %d",
		promoted.Round(time.Millisecond), time.Duration(firstAck.Load()-killed.UnixNano()).Round(time.Millisecond),
		attempts.Load(), n, failures.Load(), lost)
	if lost > 0 {
		t.Fatalf("%d acknowledged audit entries lost in the failover", lost)
	}
}

// TestSentinelFailoverLossWindow shows the window that wait_replicas closes:
// with the replica paused, the primary still acknowledges writes (its
// replica counts as connected for min-replicas-max-lag), holding what the
// replica has not read in its output buffer; SIGKILL it then and the
// promoted replica never sees those entries, whatever the primary's
// appendfsync. With wait_replicas=1 the same appends are refused instead,
// and nothing acknowledged is lost.
func TestSentinelFailoverLossWindow(t *testing.T) {
	big := strings.Repeat("x", 100<<10) // 100 KiB per entry: beyond the kernel's socket buffers in 200
	for _, tc := range []struct {
		name, query string
		wantLoss    bool
	}{
		{"without WAIT", "", true},
		// A second, not less: the first append (replica running) must be
		// acknowledged in time on a loaded machine too.
		{"wait_replicas=1", "&wait_replicas=1&wait_timeout=1s", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := startSentinelSet(t)
			st, err := redisstore.Open(set.url(tc.query), redisstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			var acked []store.AuditEntry
			if e, err := st.AppendAudit(ctx, "s", &store.AuditEntry{Actor: "t", Action: "first"}); err != nil {
				t.Fatal(err)
			} else {
				acked = append(acked, *e)
			}
			set.replica.Pause()
			refused := 0
			for i := range 200 {
				e, err := st.AppendAudit(ctx, "s", &store.AuditEntry{Actor: "t", Action: "big", Detail: map[string]string{"i": fmt.Sprint(i), "pad": big}})
				if err != nil {
					refused++
					if refused == 5 {
						break // enough to see that WAIT refuses them
					}
					continue
				}
				acked = append(acked, *e)
			}
			set.primary.Kill()
			set.replica.Resume()
			set.awaitFailover(t)
			// Reads need no replica: count on the new primary at once (the old
			// one, restarted, would only be resynchronised from it).
			lost := checkAcknowledged(t, st, "s", acked)
			t.Logf("%s: acknowledged %d, refused %d, acknowledged but lost %d", tc.name, len(acked), refused, lost)
			if tc.wantLoss && lost == 0 {
				t.Fatalf("no loss without WAIT: the window did not open (socket buffers larger than %d entries?)", len(acked))
			}
			if !tc.wantLoss && lost > 0 {
				t.Fatalf("%d acknowledged entries lost with WAIT", lost)
			}
		})
	}
}

// TestOpenURLForms checks which client each URL form makes, and that
// Porthole's own parameters are taken out before go-redis parses the rest.
func TestOpenURLForms(t *testing.T) {
	for _, tc := range []struct {
		url     string
		want    string // client type, or "error"
		prefix  string
		errPart string
	}{
		{"redis://127.0.0.1:6379/2", "*redis.Client", "porthole:", ""},
		{"redis://s1:26379?master_name=porthole&addr=s2:26379&addr=s3:26379", "*redis.Client", "porthole:", ""},
		{"redis://s1:26379?master_name=porthole&wait_replicas=1&wait_timeout=250ms", "*redis.Client", "porthole:", ""},
		{"redis://n1:6379?cluster=true&addr=n2:6379", "*redis.ClusterClient", "{porthole}:", ""},
		{"redis://n1:6379?cluster=true&key_prefix={acme}:", "*redis.ClusterClient", "{acme}:", ""},
		{"redis://n1:6379?key_prefix={porthole}:", "*redis.Client", "{porthole}:", ""},
		{"redis://n1:6379?cluster=true&key_prefix=porthole:", "error", "", "hash tag"},
		{"redis://n1:6379?cluster=true&master_name=x", "error", "", "exclude"},
		{"redis://n1:6379?wait_replicas=many", "error", "", "wait_replicas"},
		{"redis://n1:6379?no_such_option=1", "error", "", "unexpected option"},
	} {
		s, err := redisstore.Open(tc.url, redisstore.Options{})
		if tc.want == "error" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("Open(%s) = %v, want an error about %s", tc.url, err, tc.errPart)
			}
			continue
		}
		if err != nil {
			t.Errorf("Open(%s): %v", tc.url, err)
			continue
		}
		if got := fmt.Sprintf("%T", s.Client()); got != tc.want || s.Prefix() != tc.prefix {
			t.Errorf("Open(%s) = %s prefix %q, want %s prefix %q", tc.url, got, s.Prefix(), tc.want, tc.prefix)
		}
		s.Close()
	}
}

// TestClusterConformance runs the Store and PKI suites against a real Redis
// Cluster of three primaries. Each test gets a hash tag of its own, so the
// tests spread over the three nodes while each one's keys share a slot.
func TestClusterConformance(t *testing.T) {
	nodes := testenv.StartRedisCluster(t, 3)
	url := fmt.Sprintf("redis://%s?cluster=true&addr=%s&addr=%s", nodes[0].Addr, nodes[1].Addr, nodes[2].Addr)
	t.Run("store", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
			prefix := "{t" + rand.Text() + "}:"
			open := func() store.Store {
				s, err := redisstore.Open(url, redisstore.Options{Prefix: prefix})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			return open(), open
		})
	})
	t.Run("pki", func(t *testing.T) {
		storetest.RunPKI(t, func(t *testing.T, now func() time.Time) store.PKI {
			s, err := redisstore.Open(url, redisstore.Options{Prefix: "{t" + rand.Text() + "}:", Now: now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
	})
	t.Run("wait_replicas without replicas", func(t *testing.T) {
		// WAIT goes to the primary of the stream's slot on the connection
		// that wrote; these primaries have no replica, so nothing is
		// acknowledged.
		s, err := redisstore.Open(url+"&wait_replicas=1&wait_timeout=50ms", redisstore.Options{Prefix: "{w" + rand.Text() + "}:"})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = s.AppendAudit(context.Background(), "x", &store.AuditEntry{Actor: "a", Action: "b"})
		if !errors.Is(err, redisstore.ErrNotReplicated) {
			t.Fatalf("append with no replica = %v, want ErrNotReplicated", err)
		}
	})
	t.Run("default prefix", func(t *testing.T) {
		s, err := redisstore.Open(url, redisstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.AppendAudit(context.Background(), "x", &store.AuditEntry{Actor: "a", Action: "b"}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Client().XLen(context.Background(), "{porthole}:audit:x").Result(); err != nil || n != 1 {
			t.Fatalf("{porthole}:audit:x has %d entries (%v)", n, err)
		}
	})
}
