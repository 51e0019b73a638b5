package archive

import (
	"testing"
)

// FuzzDecode: whatever a segment holds, Decode returns records or an
// error, and what it returns encodes and decodes to the same records.
func FuzzDecode(f *testing.F) {
	if data, err := Encode(nil); err == nil {
		f.Add(data)
	}
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Encode(recs)
		if err != nil {
			t.Fatalf("re-encoding what was decoded: %v", err)
		}
		back, err := Decode(again)
		if err != nil || len(back) != len(recs) {
			t.Fatalf("round trip: %d records, then %d (%v)", len(recs), len(back), err)
		}
	})
}
