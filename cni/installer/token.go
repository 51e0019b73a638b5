package installer

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/utils/clock"
)

// MinTokenExpiration is the shortest lifetime the API server issues a
// requested token for; it refuses a TokenRequest asking for less.
const MinTokenExpiration = 10 * time.Minute

// Token is a credential for the plugin and the span it is valid for.
type Token struct {
	// Value is the bearer token written into the plugin's kubeconfig.
	Value string
	// Issued is when the installer asked for it (its own clock), Expires
	// when the API server says it stops being accepted.
	Issued, Expires time.Time
}

// RefreshAt is when to replace t: once two thirds of its lifetime have
// passed, which leaves a third of it to ride out an API server outage with
// the retries of Run. A token whose expiry is not after its issue (a clock
// far off from the API server's) is due at once.
func (t Token) RefreshAt() time.Time {
	return RefreshAt(t.Issued, t.Expires)
}

// RefreshAt is Token.RefreshAt as a pure function of the issue and expiry
// times.
func RefreshAt(issued, expires time.Time) time.Time {
	life := expires.Sub(issued)
	if life <= 0 {
		return issued
	}
	return issued.Add(life / 3 * 2)
}

// RetryDelay is how long Run waits after the n-th consecutive failed token
// request (n >= 1) before the next: doubling from a second up to two
// minutes, so an API server outage is not met by every node at once at full
// rate, and a recovered one is noticed within two minutes.
func RetryDelay(n int) time.Duration {
	const first, most = time.Second, 2 * time.Minute
	if n < 1 {
		n = 1
	}
	if n > 8 { // 2^7 s already exceeds most; avoid the shift overflowing
		return most
	}
	return min(first<<(n-1), most)
}

// TokenRequester obtains a fresh token for the plugin.
type TokenRequester interface {
	RequestToken(ctx context.Context) (Token, error)
}

// NodeBoundTokens requests tokens of the plugin's ServiceAccount bound to
// this node's Node object, through the TokenRequest API, with the
// installer's own credential (which may do nothing else: create tokens of
// that one ServiceAccount, and read Nodes).
//
// The binding is the point: the API server rejects the token once that
// Node object is gone (a deleted or re-registered node keeps no working
// credential on its disk), and it adds the node's name to the plugin's user
// info as the extra authentication.kubernetes.io/node-name, which
// admission policies can compare with the node an IPAM object names.
type NodeBoundTokens struct {
	// Client is the installer's client.
	Client corev1client.CoreV1Interface
	// Namespace and ServiceAccount name the plugin's identity.
	Namespace, ServiceAccount string
	// NodeName is this node's Node object.
	NodeName string
	// Expiration is the lifetime to ask for; at least MinTokenExpiration.
	Expiration time.Duration
	// Clock times the requests; the real clock when nil.
	Clock clock.PassiveClock
}

// Validate reports settings the API server would refuse, before asking it.
func (n NodeBoundTokens) Validate() error {
	switch {
	case n.Client == nil:
		return fmt.Errorf("%w: no API client for the token requests", ErrConfig)
	case n.Namespace == "" || n.ServiceAccount == "":
		return fmt.Errorf("%w: the plugin's ServiceAccount and its namespace are required", ErrConfig)
	case n.NodeName == "":
		return fmt.Errorf("%w: the node name is required (the chart passes spec.nodeName)", ErrConfig)
	case n.Expiration < MinTokenExpiration:
		return fmt.Errorf("%w: token expiration %s is below the API server's minimum of %s", ErrConfig, n.Expiration, MinTokenExpiration)
	}
	return nil
}

// RequestToken reads the Node (for its UID: the binding names one Node
// object, not whatever later takes its name) and requests a token bound to
// it, with the API server's default audiences.
func (n NodeBoundTokens) RequestToken(ctx context.Context) (Token, error) {
	if err := n.Validate(); err != nil {
		return Token{}, err
	}
	clk := n.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	node, err := n.Client.Nodes().Get(ctx, n.NodeName, metav1.GetOptions{})
	if err != nil {
		return Token{}, fmt.Errorf("%w: reading Node %s: %w", ErrTokenRequest, n.NodeName, err)
	}
	seconds := int64(n.Expiration / time.Second)
	issued := clk.Now()
	tr, err := n.Client.ServiceAccounts(n.Namespace).CreateToken(ctx, n.ServiceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: &seconds,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return Token{}, fmt.Errorf("%w: for ServiceAccount %s/%s bound to Node %s: %w", ErrTokenRequest, n.Namespace, n.ServiceAccount, n.NodeName, err)
	}
	if tr.Status.Token == "" {
		return Token{}, fmt.Errorf("%w: the API server returned an empty token for %s/%s", ErrTokenRequest, n.Namespace, n.ServiceAccount)
	}
	return Token{Value: tr.Status.Token, Issued: issued, Expires: tr.Status.ExpirationTimestamp.Time}, nil
}
