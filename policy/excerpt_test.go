package policy

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestExcerpt(t *testing.T) {
	short := strings.Repeat("a", MaxQuotedBytes)
	if got := Excerpt(short); got != short {
		t.Fatalf("a value of exactly the bound was cut: %q", got)
	}
	long := strings.Repeat("é", 200*1024) // 400 KiB of two-byte runes
	got := Excerpt(long)
	if len(got) > MaxQuotedBytes+64 {
		t.Fatalf("excerpt of a %d-byte value is %d bytes", len(long), len(got))
	}
	if !utf8.ValidString(got) {
		t.Fatalf("excerpt cut a rune in half: %q", got)
	}
	if !strings.HasSuffix(got, "(409600 bytes in all)") {
		t.Fatalf("excerpt does not say how long the value was: %q", got)
	}
}
