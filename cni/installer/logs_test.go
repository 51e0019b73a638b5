package installer

import (
	"fmt"
	"strings"
	"sync"
)

// Logs collects what the installer logs, for the tests of both this
// package and installer_test (exported only to the test build).
type Logs struct {
	mu    sync.Mutex
	lines []string
}

// Logf records one line; it is the installer's log function.
func (l *Logs) Logf(f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(f, a...))
}

// Matching returns the lines that contain every one of subs.
func (l *Logs) Matching(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}
