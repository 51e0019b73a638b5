package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParsePoolList(t *testing.T) {
	long := `["` + strings.Repeat("a", MaxAnnotationBytes) + `"]`
	many := `[` + strings.Repeat(`"p",`, MaxPoolsPerList) + `"q"]`
	cases := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: `["pool-a"]`, want: []string{"pool-a"}},
		{in: ` [ "pool-a" , "pool-b" ] `, want: []string{"pool-a", "pool-b"}},
		{in: `["198.51.100.0/24"]`, want: []string{"198.51.100.0/24"}},
		{in: `["2001:db8::/48","v6.pool"]`, want: []string{"2001:db8::/48", "v6.pool"}},
		{in: ``, wantErr: "JSON list"},
		{in: `pool-a`, wantErr: "JSON list"},
		{in: `"pool-a"`, wantErr: "JSON list"},
		{in: `null`, wantErr: "JSON list"},
		{in: `{"a":1}`, wantErr: "JSON list"},
		{in: `[`, wantErr: "not a JSON list"},
		{in: `["a"] trailing`, wantErr: "not a JSON list"},
		{in: `["a"]["b"]`, wantErr: "not a JSON list"},
		{in: `[]`, wantErr: "empty"},
		{in: `[1]`, wantErr: "not a string"},
		{in: `[null]`, wantErr: "not a string"},
		{in: `[["a"]]`, wantErr: "not a string"},
		{in: `[""]`, wantErr: "is empty"},
		{in: `["Pool_A"]`, wantErr: "neither a pool name nor a CIDR"},
		{in: `["a","a"]`, wantErr: "listed twice"},
		{in: long, wantErr: "bytes"},
		{in: many, wantErr: "pools, more than"},
	}
	for _, tc := range cases {
		got, err := ParsePoolList(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrMalformed) {
				t.Errorf("ParsePoolList(%.40q) error = %v, want ErrMalformed containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParsePoolList(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestFormatPoolListRoundTrips(t *testing.T) {
	in := []string{"a", "198.51.100.0/24", "b.c"}
	got, err := ParsePoolList(FormatPoolList(in))
	if err != nil || !reflect.DeepEqual(got, in) {
		t.Fatalf("round trip = %v, %v", got, err)
	}
}

func TestParseProvenance(t *testing.T) {
	for _, good := range []Provenance{
		{IPv4: SourceNamespace, IPv6: SourceDefault, Namespace: "ns", NamespaceResourceVersion: "42"},
		{IPv4: SourcePod, IPv6: SourcePod, Ranges: map[string]string{"trusted": "198.51.100.0/24", "2001:db8::/64": "2001:db8::/64"}},
	} {
		got, err := ParseProvenance(good.String())
		if err != nil || !got.Equal(good) {
			t.Fatalf("round trip = %+v, %v", got, err)
		}
	}
	for _, bad := range []string{
		``, `{`, `[]`, `null`, `{"ipv4pools":"pod"}`,
		`{"ipv4pools":"pod","ipv6pools":"elsewhere"}`,
		`{"ipv4pools":"pod","ipv6pools":"pod","extra":1}`,
		`{"ipv4pools":"pod","ipv6pools":"pod"} {}`,
		`{"ipv4pools":"pod","ipv6pools":"pod","namespace":` + `"` + strings.Repeat("x", MaxProvenanceBytes) + `"}`,
		`{"ipv4pools":"pod","ipv6pools":"default","ranges":{"a":"198.51.100.1/24"}}`,
		`{"ipv4pools":"pod","ipv6pools":"default","ranges":{"a":"nope"}}`,
		`{"ipv4pools":"pod","ipv6pools":"default","ranges":{"UPPER":"198.51.100.0/24"}}`,
		`{"ipv4pools":"pod","ipv6pools":"default","ranges":{"a":7}}`,
	} {
		if _, err := ParseProvenance(bad); !errors.Is(err, ErrNotFrozen) {
			t.Errorf("ParseProvenance(%.50q) = %v, want ErrNotFrozen", bad, err)
		}
	}
}
