package scale

import (
	"context"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// poolguardPrefix is where the API server keeps poolguard's objects in
// etcd (custom resources: /registry/<group>/<resource>/<name>).
const poolguardPrefix = "/registry/ipam.poolguard.dev/"

// etcdBytes sums the keys and values etcd holds for poolguard's objects,
// by resource, and for pods: what each costs in etcd, read from etcd
// itself, page by page.
func etcdBytes(ctx context.Context, endpoint string) (map[string]int64, int64, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second})
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = cli.Close() }()
	out := map[string]int64{}
	if err := scanPrefix(ctx, cli, poolguardPrefix, func(key string, n int64) {
		res, _, _ := strings.Cut(strings.TrimPrefix(key, poolguardPrefix), "/")
		out[res] += n
	}); err != nil {
		return nil, 0, err
	}
	var pods int64
	err = scanPrefix(ctx, cli, "/registry/pods/", func(_ string, n int64) { pods += n })
	return out, pods, err
}

// scanPrefix calls fn with every key under prefix and its size (key and
// value), a thousand keys per request.
func scanPrefix(ctx context.Context, cli *clientv3.Client, prefix string, fn func(key string, n int64)) error {
	end := clientv3.GetPrefixRangeEnd(prefix)
	key := prefix
	for {
		resp, err := cli.Get(ctx, key, clientv3.WithRange(end), clientv3.WithLimit(1000), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			fn(string(kv.Key), int64(len(kv.Key)+len(kv.Value)))
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}
