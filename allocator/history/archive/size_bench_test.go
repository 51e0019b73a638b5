package archive

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"poolguard.dev/poolguard/allocator/history"
	"poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// churn returns n released allocations of one day in a large cluster:
// 5,000 nodes, 10,000 namespaces, 1,000 pools, addresses spread over
// 198.18.0.0/15, Deployment-style pod names, random UIDs and container IDs
// (incompressible, as in life).
func churn(n int) []history.Record {
	rnd := mrand.New(mrand.NewPCG(1, 2))
	randHex := func(bytes int) string {
		b := make([]byte, bytes)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	day := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	base := netip.MustParseAddr("198.18.0.0").As4()
	out := make([]history.Record, n)
	for i := range out {
		off := rnd.IntN(1 << 17)
		a := base
		a[1] += byte(off >> 16)
		a[2], a[3] = byte(off>>8), byte(off)
		to := day.Add(time.Duration(rnd.Int64N(int64(24 * time.Hour)))).Truncate(time.Second)
		uid := randHex(16)
		out[i] = history.Record{
			Address:     netip.AddrFrom4(a),
			Pool:        fmt.Sprintf("pool-%03d", rnd.IntN(1000)),
			Namespace:   fmt.Sprintf("team-%04d", rnd.IntN(10000)),
			Pod:         fmt.Sprintf("svc-%04d-%s-%s", rnd.IntN(3000), randHex(5), randHex(3)[:5]),
			PodUID:      uid[:8] + "-" + uid[8:12] + "-" + uid[12:16] + "-" + uid[16:20] + "-" + uid[20:],
			Node:        fmt.Sprintf("node-%04d", rnd.IntN(5000)),
			ContainerID: randHex(32),
			IfName:      "eth0",
			From:        to.Add(-time.Duration(rnd.Int64N(int64(6 * time.Hour)))).Truncate(time.Second),
			To:          to,
		}
	}
	return out
}

// pack files records into segment objects as the recorder does (one shard
// and day per segment, none over MaxSegmentBytes), all at once.
func pack(b *testing.B, recs []history.Record) []v1alpha1.IPAMHistory {
	type key struct {
		shard netip.Prefix
		day   string
	}
	groups := map[key][]history.Record{}
	for _, r := range recs {
		k := key{history.ShardOf(r.Address), history.Day(r.To)}
		groups[k] = append(groups[k], r)
	}
	var out []v1alpha1.IPAMHistory
	for k, g := range groups {
		for n := 0; len(g) > 0; n++ {
			take := len(g)
			var data []byte
			for {
				var err error
				if data, err = Encode(history.Merge(nil, g[:take])); err != nil {
					b.Fatal(err)
				}
				if len(data) <= MaxSegmentBytes {
					break
				}
				take /= 2
			}
			out = append(out, v1alpha1.IPAMHistory{
				TypeMeta:   metav1.TypeMeta{APIVersion: "ipam.poolguard.dev/v1alpha1", Kind: "IPAMHistory"},
				ObjectMeta: metav1.ObjectMeta{Name: history.SegmentName(k.shard, k.day, n), Labels: map[string]string{v1alpha1.LabelHistoryShard: history.ShardLabel(k.shard), v1alpha1.LabelHistoryDay: k.day}},
				Spec:       v1alpha1.IPAMHistorySpec{Shard: k.shard.String(), Day: k.day, Count: int32(take), Records: data},
			})
			g = g[take:]
		}
	}
	return out
}

// BenchmarkHistorySize reports what a day of 100,000 pod starts costs the
// history in etcd: objects, bytes (each object as the API server stores
// it, JSON), bytes per record, the largest object, and how much larger
// the same records would be stored uncompressed.
func BenchmarkHistorySize(b *testing.B) {
	const n = 100_000
	recs := churn(n)
	var segs []v1alpha1.IPAMHistory
	for b.Loop() {
		segs = pack(b, recs)
	}
	total, largest := 0, 0
	for i := range segs {
		raw, err := json.Marshal(&segs[i])
		if err != nil {
			b.Fatal(err)
		}
		total += len(raw)
		largest = max(largest, len(raw))
	}
	plain, err := json.Marshal(recs)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(segs)), "objects")
	b.ReportMetric(float64(total)/(1<<20), "MiB")
	b.ReportMetric(float64(total)/n, "B/record")
	b.ReportMetric(float64(largest)/(1<<10), "KiB-largest")
	b.ReportMetric(float64(len(plain))/float64(total), "x-uncompressed")
}
