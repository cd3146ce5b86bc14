package boltstore_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/signaling/store"
	"github.com/porthole-dev/porthole/signaling/store/boltstore"
	"github.com/porthole-dev/porthole/signaling/store/storetest"
)

func TestPKIConformance(t *testing.T) {
	storetest.RunPKI(t, func(t *testing.T, now func() time.Time) store.PKI {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "porthole.db"), boltstore.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
