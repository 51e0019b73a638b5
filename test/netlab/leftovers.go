package netlab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Leftovers reports what carries the prefix after Close: network
// namespaces, root-namespace interfaces, nftables tables, and any child
// process of this one still running. It returns nil when nothing is left.
func Leftovers(prefix string) error {
	var left []string
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			left = append(left, "network namespace "+e.Name())
		}
	}
	out, err := ip("-j", "link")
	if err != nil {
		return err
	}
	var links []struct {
		IfName string `json:"ifname"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return err
	}
	for _, l := range links {
		if strings.HasPrefix(l.IfName, prefix) || l.IfName == "to-firewall" || l.IfName == "to-node" {
			left = append(left, "interface "+l.IfName+" in the root namespace")
		}
	}
	tables, err := Run("nft", "list", "tables")
	if err != nil {
		return err
	}
	table := strings.ReplaceAll(prefix, "-", "_")
	for _, t := range strings.Split(tables, "\n") {
		if strings.Contains(t, table) {
			left = append(left, "nftables "+t)
		}
	}
	for _, pid := range Children() {
		left = append(left, fmt.Sprintf("child process %d", pid))
	}
	if len(left) > 0 {
		return errors.New("left behind: " + strings.Join(left, "; "))
	}
	return nil
}

// Children lists the running child processes of this process.
func Children() []int {
	me := os.Getpid()
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == me {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
			out = append(out, pid)
		}
	}
	return out
}

// Sweep removes every network namespace whose name starts with prefix: the
// last resort of a signal handler that may interrupt Start before it
// returns a Lab to close. Give it a run's own prefix, never a shared one.
func Sweep(prefix string) error {
	entries, _ := os.ReadDir(netnsDir)
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			errs = append(errs, delNetns(e.Name()))
		}
	}
	return errors.Join(errs...)
}
