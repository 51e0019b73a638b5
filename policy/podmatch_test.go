package policy

import (
	"testing"
)

func TestIsThePod(t *testing.T) {
	mirror := map[string]string{AnnotationMirrorPod: "static-uid"}
	for _, tc := range []struct {
		name        string
		podUID      string
		annotations map[string]string
		uid         string
		want        bool
	}{
		{"same UID", "u1", nil, "u1", true},
		{"another pod of that name", "u2", nil, "u1", false},
		{"the runtime passed no UID", "u2", nil, "", true},
		{"a static pod through its mirror", "mirror-uid", mirror, "static-uid", true},
		{"the mirror pod's own UID", "mirror-uid", mirror, "mirror-uid", true},
		{"a mirror pod of another static pod", "mirror-uid", mirror, "other-static", false},
		{"an empty mirror annotation matches no UID", "u2", map[string]string{AnnotationMirrorPod: ""}, "u1", false},
	} {
		if got := IsThePod(tc.podUID, tc.annotations, tc.uid); got != tc.want {
			t.Errorf("%s: IsThePod = %v, want %v", tc.name, got, tc.want)
		}
	}
}
