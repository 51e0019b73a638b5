package cluster

import (
	"errors"
	"sync"
)

// The running clusters, for CloseAll: `go test` runs no t.Cleanup when it
// is interrupted, and containerd's shims, the cgroups and the network
// namespace outlive the process that made them.
var (
	liveMu sync.Mutex
	live   = map[*Cluster]bool{}
)

func register(c *Cluster) {
	liveMu.Lock()
	defer liveMu.Unlock()
	live[c] = true
}

func unregister(c *Cluster) {
	liveMu.Lock()
	defer liveMu.Unlock()
	delete(live, c)
}

// CloseAll closes every cluster this process started and has not closed:
// for a signal handler.
func CloseAll() error {
	liveMu.Lock()
	cs := make([]*Cluster, 0, len(live))
	for c := range live {
		cs = append(cs, c)
	}
	liveMu.Unlock()
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
