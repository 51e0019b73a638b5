package netlab

import (
	"net/netip"
	"strings"
	"testing"
)

// A range over an address of the root namespace is refused, naming the
// address: every machine has 127.0.0.1 on lo.
func TestCheckRootFreeRefusesAnOverlap(t *testing.T) {
	err := CheckRootFree(netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("127.0.0.0/30"))
	if err == nil || !strings.Contains(err.Error(), "127.0.0.0/30") || !strings.Contains(err.Error(), "on lo") {
		t.Fatalf("CheckRootFree(127.0.0.0/30) = %v; want a refusal naming lo's address", err)
	}
}
