package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/porthole-dev/porthole/signaling/bus"
	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
	"github.com/porthole-dev/porthole/signaling/store/redisstore"
)

// fullStore is what signaling keeps: the Store and the agents' PKI, on
// one backend.
type fullStore interface {
	store.Store
	store.PKI
}

// openStore opens the Redis store when redisURL is set (a cluster node:
// one server, Sentinel or Redis Cluster, see redisstore.Open),
// otherwise the embedded store in dir, creating dir if needed.
func openStore(dir, redisURL string) (fullStore, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	if redisURL != "" {
		st, err := redisstore.Open(redisURL, redisstore.Options{})
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.Ping(ctx); err != nil {
			st.Close()
			return nil, fmt.Errorf("redis: %w", err) // the URL may hold a password
		}
		return st, nil
	}
	return boltstore.Open(filepath.Join(dir, "porthole.db"), boltstore.Options{})
}

// clusterBus joins the Redis cluster as node when st is the Redis store;
// nil for a single node.
func clusterBus(st fullStore, node string, log *slog.Logger) (bus.Bus, error) {
	rs, ok := st.(*redisstore.Store)
	if !ok {
		return nil, nil
	}
	// The bus's keys share the store's prefix: on a Redis Cluster, its hash
	// tag puts them on the one slot that the bus's scripts need.
	return bus.NewRedis(rs.Client(), bus.RedisOptions{Node: node, Prefix: rs.Prefix(), Logger: log})
}
