package boltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
	"github.com/porthole-dev/porthole/signaling/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		path := filepath.Join(t.TempDir(), "porthole.db")
		open := func() store.Store {
			s, err := boltstore.Open(path, boltstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return open(), open
	})
}

func TestOpenRefusesALockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "porthole.db")
	s, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := boltstore.Open(path, boltstore.Options{Timeout: 50e6}); err == nil {
		t.Fatal("a second process opened the same store")
	}
}
