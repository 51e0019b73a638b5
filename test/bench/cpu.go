package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// every Linux this runs on).
const clockTick = 10 * time.Millisecond

// Processes whose CPU time a run accounts for: where a setup's cost lands
// tells more than throughput alone on a shared machine.
type Processes struct {
	// APIServer and Etcd are envtest's child processes.
	APIServer, Etcd int
}

// FindProcesses finds kube-apiserver and etcd among this process's
// children.
func FindProcesses() (Processes, error) {
	var p Processes
	self := os.Getpid()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		comm, fields, ok := parseStat(string(b))
		if !ok || len(fields) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid != self {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		switch {
		case strings.HasPrefix(comm, "kube-apiserver"):
			p.APIServer = pid
		case strings.HasPrefix(comm, "etcd"):
			p.Etcd = pid
		}
	}
	if p.APIServer == 0 || p.Etcd == 0 {
		return p, fmt.Errorf("kube-apiserver (pid %d) or etcd (pid %d) not found among the children of pid %d", p.APIServer, p.Etcd, self)
	}
	return p, nil
}

// CPU is the CPU time used so far by the API server, etcd and this process
// (the benchmark's clients and the webhook server it hosts).
type CPU struct {
	APIServer, Etcd, Self time.Duration
}

// Sample reads the processes' CPU times.
func (p Processes) Sample() CPU {
	return CPU{APIServer: CPUOf(p.APIServer), Etcd: CPUOf(p.Etcd), Self: CPUOf(os.Getpid())}
}

// Settle waits, up to max, until the API server and etcd use less than a
// tenth of a core over a second: the background work a setup step leaves
// (watch cache, garbage collection) would otherwise be measured as part
// of the next run.
func (p Processes) Settle(max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		before := p.Sample()
		time.Sleep(time.Second)
		d := p.Sample().Sub(before)
		if d.APIServer+d.Etcd < 100*time.Millisecond {
			return
		}
	}
}

// Sub returns c - o.
func (c CPU) Sub(o CPU) CPU {
	return CPU{APIServer: c.APIServer - o.APIServer, Etcd: c.Etcd - o.Etcd, Self: c.Self - o.Self}
}

// CPUOf returns a process's user+system time, 0 when it cannot be read.
func CPUOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	_, fields, ok := parseStat(string(b))
	// utime and stime are fields 14 and 15 of stat(5); fields here start at
	// field 3 (state).
	if !ok || len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	s, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(u+s) * clockTick
}

// parseStat splits /proc/<pid>/stat after the command name, which may hold
// spaces and parentheses.
func parseStat(s string) (comm string, fields []string, ok bool) {
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return "", nil, false
	}
	return s[open+1 : closing], strings.Fields(s[closing+1:]), true
}
