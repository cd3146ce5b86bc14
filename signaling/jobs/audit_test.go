package jobs

import (
	"reflect"
	"testing"
	"time"

	"github.com/porthole-dev/porthole/proto"
	"github.com/porthole-dev/porthole/signaling/store"
)

// Every field of an access entry survives its stored form: an entry with
// each field set (by reflection, so a field added later is covered without
// editing this test) comes back equal.
func TestAccessEntryRoundTripsThroughTheStore(t *testing.T) {
	var e proto.AccessEntry
	v := reflect.ValueOf(&e).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x" + v.Type().Field(i).Name)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(40 + i))
		case reflect.Uint64:
			f.SetUint(uint64(40 + i))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Pointer:
			if f.Type() != reflect.TypeOf(&proto.AccessForm{}) {
				t.Fatalf("field %s: teach this test its type", v.Type().Field(i).Name)
			}
			f.Set(reflect.ValueOf(&proto.AccessForm{Encoding: proto.FormURLEncoded, Truncated: true,
				Fields: []proto.AccessField{{Name: "hostname", Value: "printer-3"}, {Name: "upload", File: "fw.bin", Size: 4096}}}))
		case reflect.Struct:
			if f.Type() != reflect.TypeOf(time.Time{}) {
				t.Fatalf("field %s: teach this test its type", v.Type().Field(i).Name)
			}
			f.Set(reflect.ValueOf(time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)))
		default:
			t.Fatalf("field %s of kind %s: teach this test to fill it", v.Type().Field(i).Name, f.Kind())
		}
	}
	e.Kind = proto.AccessHTTP
	got := FromAudit(ToAudit(&store.Job{User: "tech", Site: "site-a"}, &e))
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip lost fields:\n got %+v\nwant %+v", got, e)
	}
}
