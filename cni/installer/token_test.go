package installer

import (
	"context"
	"errors"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// TestRefreshAt: two thirds into the lifetime, whatever its length; a
// lifetime that is not positive is due at once.
func TestRefreshAt(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name            string
		issued, expires time.Time
		want            time.Time
	}{
		{"default 24h", t0, t0.Add(24 * time.Hour), t0.Add(16 * time.Hour)},
		{"minimum 10m", t0, t0.Add(10 * time.Minute), t0.Add(6*time.Minute + 40*time.Second)},
		{"capped by the API server to 1h", t0, t0.Add(time.Hour), t0.Add(40 * time.Minute)},
		{"expires at issue", t0, t0, t0},
		{"expired before issue (clock skew)", t0, t0.Add(-time.Minute), t0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RefreshAt(tc.issued, tc.expires); !got.Equal(tc.want) {
				t.Fatalf("RefreshAt = %s, want %s", got, tc.want)
			}
			if got := (Token{Issued: tc.issued, Expires: tc.expires}).RefreshAt(); !got.Equal(tc.want) {
				t.Fatalf("Token.RefreshAt = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestRetryDelay: doubling from 1s, capped at 2m.
func TestRetryDelay(t *testing.T) {
	for n, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 7: 64 * time.Second, 8: 2 * time.Minute, 64: 2 * time.Minute, 1000: 2 * time.Minute} {
		if got := RetryDelay(n); got != want {
			t.Errorf("RetryDelay(%d) = %s, want %s", n, got, want)
		}
	}
}

// fakeClient is an API with Node worker-1 (UID uid-1) that answers token
// requests with "node-bound", expiring in the requested seconds, and
// records them in requests.
func fakeClient(requests ...*[]*authenticationv1.TokenRequest) corev1client.CoreV1Interface {
	cs := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1", UID: "uid-1"}})
	cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca, ok := a.(k8stesting.CreateAction)
		if !ok || ca.GetSubresource() != "token" {
			return false, nil, nil
		}
		tr := ca.GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		for _, r := range requests {
			*r = append(*r, tr)
		}
		tr.Status.Token = "node-bound"
		tr.Status.ExpirationTimestamp = metav1.NewTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(*tr.Spec.ExpirationSeconds) * time.Second))
		return true, tr, nil
	})
	return cs.CoreV1()
}

// TestNodeBoundTokensRequest: the request binds the token to the Node's
// name and UID, asks for the configured lifetime with the default
// audiences, and the token's span comes from the API server's expiry.
func TestNodeBoundTokensRequest(t *testing.T) {
	var reqs []*authenticationv1.TokenRequest
	clk := clocktesting.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	n := NodeBoundTokens{Client: fakeClient(&reqs), Namespace: "pg-system", ServiceAccount: "pg-poolguard-cni", NodeName: "worker-1", Expiration: 24 * time.Hour, Clock: clk}
	tok, err := n.RequestToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 {
		t.Fatalf("%d token requests", len(reqs))
	}
	spec := reqs[0].Spec
	want := authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Node", Name: "worker-1", UID: "uid-1"}
	if spec.BoundObjectRef == nil || *spec.BoundObjectRef != want {
		t.Errorf("bound object = %+v, want %+v", spec.BoundObjectRef, want)
	}
	if spec.ExpirationSeconds == nil || *spec.ExpirationSeconds != 86400 || len(spec.Audiences) != 0 {
		t.Errorf("expirationSeconds %v audiences %v, want 86400 and the default audiences", spec.ExpirationSeconds, spec.Audiences)
	}
	if tok.Value != "node-bound" || !tok.Issued.Equal(clk.Now()) || !tok.Expires.Equal(clk.Now().Add(24*time.Hour)) {
		t.Errorf("token = %+v", tok)
	}

	n.NodeName = "worker-2" // no such Node: nothing to bind to
	if _, err := n.RequestToken(context.Background()); !errors.Is(err, ErrTokenRequest) {
		t.Fatalf("token for a missing Node: %v, want ErrTokenRequest", err)
	}
}

// TestNodeBoundTokensValidate: what the API server would refuse is refused
// before asking it.
func TestNodeBoundTokensValidate(t *testing.T) {
	ok := NodeBoundTokens{Client: fakeClient(), Namespace: "ns", ServiceAccount: "sa", NodeName: "n", Expiration: MinTokenExpiration}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid settings refused: %v", err)
	}
	for name, mutate := range map[string]func(*NodeBoundTokens){
		"below 10m":          func(n *NodeBoundTokens) { n.Expiration = MinTokenExpiration - time.Second },
		"no node":            func(n *NodeBoundTokens) { n.NodeName = "" },
		"no service account": func(n *NodeBoundTokens) { n.ServiceAccount = "" },
		"no namespace":       func(n *NodeBoundTokens) { n.Namespace = "" },
		"no client":          func(n *NodeBoundTokens) { n.Client = nil },
	} {
		n := ok
		mutate(&n)
		if err := n.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Validate = %v, want ErrConfig", name, err)
		}
		if _, err := n.RequestToken(context.Background()); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: RequestToken = %v, want ErrConfig", name, err)
		}
	}
}
