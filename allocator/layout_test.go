package allocator

import (
	"math/big"
	"net/netip"
	"testing"
)

func TestLayout(t *testing.T) {
	cases := []struct {
		pool              string
		blockSize         int
		blockBits         int
		shared            bool
		numBlocks         string
		capacity          string
		second, lastBlock string
	}{
		{"198.51.100.0/29", 26, 29, true, "1", "6", "", "198.51.100.0/29"},
		{"198.51.100.0/24", 26, 26, false, "4", "254", "198.51.100.64/26", "198.51.100.192/26"},
		{"198.18.0.0/16", 26, 26, false, "1024", "65534", "198.18.0.64/26", "198.18.255.192/26"},
		{"198.51.100.0/26", 26, 26, true, "1", "62", "", "198.51.100.0/26"},
		{"2001:db8:5::/48", 122, 122, false, "18889465931478580854784", "1208925819614629174706175", "2001:db8:5::40/122", "2001:db8:5:ffff:ffff:ffff:ffff:ffc0/122"},
		{"2001:db8::/126", 122, 126, true, "1", "3", "", "2001:db8::/126"},
		// The caller resolves the default block size; none at all makes
		// the pool one shared block.
		{"198.51.100.0/24", 0, 24, true, "1", "254", "", "198.51.100.0/24"},
	}
	for _, tc := range cases {
		p := pool(t, "p", tc.pool, tc.blockSize)
		if p.BlockBits() != tc.blockBits || p.Shared() != tc.shared {
			t.Errorf("%s: bits %d shared %v", tc.pool, p.BlockBits(), p.Shared())
		}
		if p.NumBlocks().String() != tc.numBlocks || p.Capacity().String() != tc.capacity {
			t.Errorf("%s: blocks %s capacity %s", tc.pool, p.NumBlocks(), p.Capacity())
		}
		if tc.second != "" {
			b, ok := p.BlockAt(big.NewInt(1))
			if !ok || b.String() != tc.second {
				t.Errorf("%s: second block %s", tc.pool, b)
			}
		}
		last, ok := p.BlockAt(new(big.Int).Sub(p.NumBlocks(), big.NewInt(1)))
		if !ok || last.String() != tc.lastBlock {
			t.Errorf("%s: last block %s", tc.pool, last)
		}
		if _, ok := p.BlockAt(p.NumBlocks()); ok {
			t.Errorf("%s: block past the end", tc.pool)
		}
	}
}

func TestBlockName(t *testing.T) {
	for cidr, want := range map[string]string{
		"198.18.0.64/26":   "198-18-0-64-26",
		"2001:db8::40/122": "2001-0db8-0000-0000-0000-0000-0000-0040-122",
	} {
		if got := BlockName(netip.MustParsePrefix(cidr)); got != want {
			t.Errorf("BlockName(%s) = %s, want %s", cidr, got, want)
		}
	}
}

func TestReservedAddresses(t *testing.T) {
	for _, tc := range []struct {
		pool, addr string
		reserved   bool
	}{
		{"198.51.100.0/29", "198.51.100.0", true},
		{"198.51.100.0/29", "198.51.100.7", true},
		{"198.51.100.0/29", "198.51.100.1", false},
		{"198.51.100.0/24", "198.51.100.63", false}, // a block edge is not reserved
		{"198.51.100.0/31", "198.51.100.0", false},
		{"2001:db8::/64", "2001:db8::", true},
		{"2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff", false},
		{"2001:db8::/127", "2001:db8::", false},
	} {
		if got := Reserved(netip.MustParsePrefix(tc.pool), netip.MustParseAddr(tc.addr)); got != tc.reserved {
			t.Errorf("Reserved(%s, %s) = %v", tc.pool, tc.addr, got)
		}
	}
}

func bigZero() *big.Int { return big.NewInt(0) }
