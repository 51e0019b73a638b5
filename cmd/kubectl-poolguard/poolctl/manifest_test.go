package poolctl

import (
	"errors"
	"testing"

	"poolguard.dev/poolguard/policy"
)

func TestParseManifest(t *testing.T) {
	for _, tc := range []struct {
		name, manifest string
		want           Pod
		err            error
	}{
		{
			name: "pod",
			manifest: `apiVersion: v1
kind: Pod
metadata:
  name: probe
  namespace: payments
  annotations: {cni.projectcalico.org/ipv4pools: '["trusted"]'}
spec: {nodeName: n1, containers: [{name: c, image: x}]}`,
			want: Pod{Name: "probe", Namespace: "payments", Node: "n1", Annotations: v4("trusted")},
		},
		{
			name:     "json hostNetwork pod",
			manifest: `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"h"},"spec":{"hostNetwork":true}}`,
			want:     Pod{Name: "h", HostNetwork: true},
		},
		{
			name: "deployment: its template's annotations, not its own",
			manifest: `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, annotations: {cni.projectcalico.org/ipv4pools: '["ignored"]'}}
spec:
  template:
    metadata: {annotations: {cni.projectcalico.org/ipv4pools: '["general"]'}}
    spec: {containers: [{name: c, image: x}]}`,
			want: Pod{Name: "Deployment/web", Namespace: "shop", Annotations: v4("general")},
		},
		{
			name: "cronjob",
			manifest: `apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec: {jobTemplate: {spec: {template: {metadata: {annotations: {cni.projectcalico.org/ipv4pools: '["general"]'}}}}}}`,
			want: Pod{Name: "CronJob/nightly", Annotations: v4("general")},
		},
		{name: "no kind", manifest: `metadata: {name: x}`, err: ErrUsage},
		{name: "no template", manifest: `{kind: ConfigMap, metadata: {name: x}}`, err: ErrUsage},
		{name: "not yaml", manifest: `kind: [`, err: ErrUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseManifest([]byte(tc.manifest))
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if got.Name != tc.want.Name || got.Namespace != tc.want.Namespace || got.Node != tc.want.Node || got.HostNetwork != tc.want.HostNetwork ||
				got.Annotations[policy.AnnotationIPv4Pools] != tc.want.Annotations[policy.AnnotationIPv4Pools] {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
