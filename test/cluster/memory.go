package cluster

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MemoryRSS is the resident memory of every process of the cluster: its
// components and containerd's shims (their command lines name the
// cluster's directory) and its pods' processes (in its cgroup root).
// Shared pages count once per process, as ps shows them.
func (c *Cluster) MemoryRSS() (bytes int64) {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmd, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue
		}
		cg, _ := os.ReadFile(filepath.Join(p, "cgroup"))
		if !strings.Contains(string(cmd), c.Dir) && !strings.Contains(string(cg), ":"+c.cgroupRoot+"/") {
			continue
		}
		bytes += vmRSS(filepath.Join(p, "status"))
	}
	return bytes
}

// vmRSS reads VmRSS from a /proc/PID/status file, in bytes.
func vmRSS(status string) int64 {
	f, err := os.Open(status)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
