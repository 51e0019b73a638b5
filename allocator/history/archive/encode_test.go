package archive

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/allocator/history"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

func TestEncodeRoundTrip(t *testing.T) {
	from := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	recs := []history.Record{
		{Address: netip.MustParseAddr("198.51.100.7"), Pool: "trusted", Namespace: "payments", Pod: "api-0", PodUID: "u1", Node: "n1", ContainerID: "c1", IfName: "eth0", From: from, To: from.Add(time.Hour)},
		{Address: netip.MustParseAddr("2001:db8::1c"), Pool: "v6", Namespace: "payments", Pod: "api-0", Node: "n1", ContainerID: "c1", IfName: "eth0", From: from, To: from.Add(time.Hour)},
	}
	data, err := Encode(recs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, recs)
	}
	if got, err := Decode(nil); err != nil || got != nil {
		t.Errorf("empty segment: %v, %v", got, err)
	}
}

func TestDecodeRefusesBadData(t *testing.T) {
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return buf.Bytes()
	}
	for name, data := range map[string][]byte{
		"not gzip":       []byte("[]"),
		"truncated":      gz([]byte(`[{"address":"198.51.100.7"}]`))[:12],
		"not JSON":       gz([]byte("hello")),
		"bad address":    gz([]byte(`[{"address":"198.51.100.300"}]`)),
		"expands beyond": gz(bytes.Repeat([]byte(" "), maxDecoded+2)),
	} {
		if _, err := Decode(data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func TestRecordsOf(t *testing.T) {
	created := metav1.NewTime(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC))
	c := &v1alpha1.IPAMClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "c-1", CreationTimestamp: created},
		Spec: v1alpha1.IPAMClaimSpec{ContainerID: "ctr", IfName: "eth0", Node: "n1", Pod: v1alpha1.PodReference{Namespace: "payments", Name: "api-0", UID: "u1"},
			Addresses: []v1alpha1.ClaimAddress{{Pool: "trusted", Address: "198.51.100.7"}, {Pool: "v6", Address: "2001:db8::1c"}}},
	}
	recs := RecordsOf(c)
	if len(recs) != 2 || !recs[0].Open() || recs[1].Address.String() != "2001:db8::1c" || recs[0].Pod != "api-0" || !recs[0].From.Equal(created.Time) {
		t.Fatalf("live claim: %+v", recs)
	}
	del := metav1.NewTime(created.Add(time.Hour))
	c.DeletionTimestamp = &del
	if recs := RecordsOf(c); recs[0].Open() || !recs[0].To.Equal(del.Time) {
		t.Errorf("released claim: %+v", recs[0])
	}
}
