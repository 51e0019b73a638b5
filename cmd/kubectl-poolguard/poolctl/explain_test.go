package poolctl

import (
	"strings"
	"testing"

	"poolguard.dev/poolguard/policy"
)

// TestExplainCreate: the verdicts of a pod's admission, per family and per
// pool, with where the decision comes from and why a pool is refused.
func TestExplainCreate(t *testing.T) {
	payments := ns("payments", nil, nil)
	web := ns("web", nil, nil)
	for _, tc := range []struct {
		name     string
		pod      Pod
		ns       policy.Namespace
		rules    policy.Rules
		admitted bool
		skipped  string
		refusal  string
		want     []string
	}{
		{
			name: "pod names a Manual pool its namespace may use", ns: payments, admitted: true,
			pod:  Pod{Annotations: v4("trusted")},
			want: []string{"IPv4 pod trusted=yes", "IPv6 default v6=yes"},
		},
		{
			name: "namespaceSelector does not select the namespace", ns: web,
			pod:     Pod{Annotations: v4("trusted")},
			refusal: "does not allow namespace",
			want:    []string{"IPv4 pod trusted=no|namespaceSelector"},
		},
		{
			name: "unknown pool", ns: web, pod: Pod{Annotations: v4("nope")},
			refusal: "does not exist", want: []string{"IPv4 pod nope=no|does not exist"},
		},
		{
			name: "IPv6 pool under ipv4pools", ns: web, pod: Pod{Annotations: v4("v6")},
			refusal: "IPv6", want: []string{"IPv4 pod v6=no|is IPv6"},
		},
		{
			name: "disabled pool", ns: web, pod: Pod{Annotations: v4("off")},
			refusal: "disabled", want: []string{"IPv4 pod off=no|disabled"},
		},
		{
			name: "invalid pool", ns: web, pod: Pod{Annotations: v4("broken")},
			refusal: "cannot be used", want: []string{"IPv4 pod broken=no|invalid"},
		},
		{
			name: "one good and one bad pool: refused, each with its verdict", ns: web,
			pod:     Pod{Annotations: v4("general", "trusted")},
			refusal: "trusted",
			want:    []string{"IPv4 pod general=yes", "IPv4 pod trusted=no|namespaceSelector"},
		},
		{
			name: "namespace default copied", admitted: true,
			ns:   ns("payments", v4("trusted"), nil),
			want: []string{"IPv4 namespace trusted=yes", "IPv6 default v6=yes"},
		},
		{
			name: "a pod naming nothing: the Automatic pools, and why the others are not", ns: web, admitted: true,
			want: []string{
				"IPv4 default general=yes",
				"IPv4 default payments-auto=no|namespaceSelector",
				"IPv4 default off=no|disabled",
				"IPv4 default rack-a=yes|only on nodes",
				"IPv4 default broken=no|invalid",
			},
		},
		{
			name: "bound to a node: its nodeSelector is decided now", ns: web, admitted: true,
			pod:  Pod{Node: "n1", NodeLabels: map[string]string{"rack": "b"}},
			want: []string{"IPv4 default rack-a=no|does not select the pod's node"},
		},
		{
			name: "bound to a node a named pool does not serve", ns: web,
			pod:     Pod{Annotations: v4("rack-a"), Node: "n1", NodeLabels: map[string]string{"rack": "b"}},
			refusal: "nodeSelector", want: []string{"IPv4 pod rack-a=no|nodeSelector"},
		},
		{
			name: "hostNetwork", ns: web, admitted: true,
			pod: Pod{HostNetwork: true, Annotations: v4("trusted")}, skipped: "hostNetwork",
		},
		{
			name: "opted-out namespace: fail-safe pools only", admitted: true,
			ns:      ns("legacy", nil, map[string]string{policy.LabelOptOut: "true"}),
			pod:     Pod{Annotations: v4("trusted")},
			skipped: "opted out",
			want:    []string{"IPv4 - general=yes", "IPv4 - payments-auto=no|namespaceSelector"},
		},
		{
			name: "Calico mode pins the defaults that serve any node", ns: web, admitted: true,
			rules: policy.Rules{PinDefaults: true},
			want:  []string{"IPv4 default general=yes", "IPv6 default v6=yes"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.pod.Namespace = tc.ns.Name
			a := ExplainCreate(tc.pod, tc.ns, testIndex(), tc.rules)
			if a.Admitted != tc.admitted {
				t.Errorf("admitted = %v, want %v (refusals %q)", a.Admitted, tc.admitted, a.Refusals)
			}
			if !strings.Contains(a.Skipped, tc.skipped) || (tc.skipped == "") != (a.Skipped == "") {
				t.Errorf("skipped = %q, want it to mention %q", a.Skipped, tc.skipped)
			}
			if tc.refusal != "" && !strings.Contains(strings.Join(a.Refusals, "\n"), tc.refusal) {
				t.Errorf("refusals %q do not mention %q", a.Refusals, tc.refusal)
			}
			wantLines(t, verdicts(a.Families), tc.want...)
		})
	}
}

// TestExplainCreateAgreesWithAdmission: whenever explain says admitted, the
// webhook's own check of the frozen result (CheckFrozen, then CheckPod)
// admits it too, and the frozen lists are exactly what explain shows.
func TestExplainCreateAgreesWithAdmission(t *testing.T) {
	ix := testIndex()
	for _, n := range []policy.Namespace{ns("payments", v4("trusted"), nil), ns("web", nil, nil), ns("web", v4("general"), nil)} {
		for _, ann := range []map[string]string{nil, v4("trusted"), v4("general"), v4("off")} {
			a := ExplainCreate(Pod{Annotations: ann}, n, ix, policy.Rules{})
			frozen := policy.Freeze(ann, n, ix)
			written := frozen.Apply(map[string]string{})
			got, err := policy.Rules{}.CheckFrozen(written, n, ix, nil)
			if err != nil {
				t.Fatalf("%s %v: %v", n.Name, ann, err)
			}
			deny, _ := policy.Split(policy.CheckPod(got, policy.Subject{Namespace: n}, ix))
			if a.Admitted != (len(deny) == 0) {
				t.Errorf("%s %v: explain admitted=%v, webhook denies %v", n.Name, ann, a.Admitted, deny)
			}
			for i, fam := range policy.Families {
				if (a.Families[i].List == nil) != (frozen.Value(fam) == nil) || (a.Families[i].List != nil && *a.Families[i].List != *frozen.Value(fam)) {
					t.Errorf("%s %v %s: explain list %v, freeze %v", n.Name, ann, fam, a.Families[i].List, frozen.Value(fam))
				}
			}
		}
	}
}

// TestExplainNamespace: a namespace's defaults, whether the webhook would
// accept them now, and what a pod naming none gets.
func TestExplainNamespace(t *testing.T) {
	ix := testIndex()
	r := ExplainNamespace(ns("payments", v4("trusted"), nil), ix, policy.Rules{})
	if !r.Valid || r.Defaults[policy.AnnotationIPv4Pools] != `["trusted"]` {
		t.Errorf("payments: valid=%v defaults=%v problems=%q", r.Valid, r.Defaults, r.Problems)
	}
	wantLines(t, verdicts(r.NewPod.Families), "IPv4 namespace trusted=yes")

	r = ExplainNamespace(ns("web", v4("trusted", "off"), nil), ix, policy.Rules{})
	if r.Valid || len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "does not allow namespace") {
		t.Errorf("web naming trusted: valid=%v problems=%q, want one namespaceSelector problem", r.Valid, r.Problems)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "disabled") {
		t.Errorf("web naming off: warnings=%q, want the disabled pool as a warning", r.Warnings)
	}
	if r.NewPod.Admitted {
		t.Error("a pod naming nothing in web would copy the invalid default, yet explain admits it")
	}
}

// TestExplainRunning: a running pod's frozen pools, their verdicts now,
// what it would get now, and where its addresses lie.
func TestExplainRunning(t *testing.T) {
	ix := testIndex()
	then := ns("payments", v4("trusted"), nil)
	pod := frozenPod("p", nil, then, ix, "203.0.113.5", "2001:db8::5")
	now := ns("payments", v4("general"), nil)
	r := ExplainRunning(pod, now, ix, policy.Rules{})
	if !r.ProvenanceValid || r.Provenance == nil || r.Provenance.Namespace != "payments" {
		t.Fatalf("provenance valid=%v %+v (%s)", r.ProvenanceValid, r.Provenance, r.ProvenanceProblem)
	}
	wantLines(t, verdicts(r.Frozen), "IPv4 namespace trusted=yes", "IPv6 default v6=yes")
	wantLines(t, verdicts(r.Now.Families), "IPv4 namespace general=yes")
	if len(r.Addresses) != 2 || r.Addresses[0].Pool != "trusted" || !r.Addresses[0].Expected || r.Addresses[1].Pool != "v6" || !r.Addresses[1].Expected {
		t.Errorf("addresses = %+v", r.Addresses)
	}
	if len(r.Findings) != 1 || r.Findings[0].Kind != KindDrift {
		t.Errorf("findings = %+v, want one drift", r.Findings)
	}

	unfrozen := Pod{Namespace: "web", Name: "u", Annotations: v4("trusted"), IPs: addrs("198.51.100.9")}
	r = ExplainRunning(unfrozen, ns("web", nil, nil), ix, policy.Rules{})
	if r.ProvenanceValid || !strings.Contains(r.ProvenanceProblem, "no "+policy.AnnotationProvenance) {
		t.Errorf("unfrozen: valid=%v problem=%q", r.ProvenanceValid, r.ProvenanceProblem)
	}
	wantLines(t, verdicts(r.Frozen), "IPv4 - general=yes", "IPv4 - payments-auto=no")
	if r.Now.Admitted {
		// Created again with what it names, it would be refused: trusted
		// is not web's.
		t.Errorf("unfrozen pod naming trusted in web: now admitted = %v", r.Now.Admitted)
	}
}
