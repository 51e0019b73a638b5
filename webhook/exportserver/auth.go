package exportserver

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	authenticationv1 "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationv1 "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
)

// How long the reviews' answers are kept. Firewalls poll every few
// seconds: with these a poll costs no API call most of the time, and a
// revoked binding or token stops working within seconds. The
// SubjectAccessReview cache is an LRU of at most 8192 answers; tokens are
// cached by hash and expire.
const (
	TokenCacheTTL = 10 * time.Second
	AllowCacheTTL = 10 * time.Second
	DenyCacheTTL  = 5 * time.Second
)

// ErrSystemIdentity: a client certificate claims a system: user or group.
var ErrSystemIdentity = errors.New("client certificate claims a system: identity")

// Certificates authenticates the client certificate that the TLS
// handshake verified against the export CA (see clientauth.Config's
// Optional): its subject's common name is the user, its organizations the
// groups, as the API server reads a client certificate. A certificate
// naming a system: user or group is refused: no firewall needs one, and a
// CA shared with other uses must not make its holders system:masters here.
type Certificates struct{}

// AuthenticateRequest implements authenticator.Request.
func (Certificates) AuthenticateRequest(r *http.Request) (*authenticator.Response, bool, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, false, nil
	}
	leaf := r.TLS.VerifiedChains[0][0]
	name := leaf.Subject.CommonName
	if name == "" {
		return nil, false, errors.New("client certificate has no subject common name (the user)")
	}
	for _, n := range append([]string{name}, leaf.Subject.Organization...) {
		if strings.HasPrefix(n, "system:") {
			return nil, false, fmt.Errorf("%w (%q)", ErrSystemIdentity, n)
		}
	}
	groups := append([]string{}, leaf.Subject.Organization...)
	groups = append(groups, user.AllAuthenticated)
	return &authenticator.Response{User: &user.DefaultInfo{Name: name, Groups: groups}}, true, nil
}

// Union tries each authenticator in turn: the first that recognizes the
// request decides, as the API server's own union does.
type Union []authenticator.Request

// AuthenticateRequest implements authenticator.Request.
func (u Union) AuthenticateRequest(r *http.Request) (*authenticator.Response, bool, error) {
	var errs []error
	for _, a := range u {
		resp, ok, err := a.AuthenticateRequest(r)
		if ok {
			return resp, true, nil
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return nil, false, errors.Join(errs...)
}

// retry is the reviews' backoff, as controller-runtime's metrics filter
// (and the API server's delegated authentication) use.
var retry = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}

// Delegated returns the authenticator (client certificates first, then
// bearer tokens by TokenReview; nothing anonymous) and the authorizer
// (SubjectAccessReview) the API server at cfg answers, with cached
// answers (TokenCacheTTL, AllowCacheTTL, DenyCacheTTL).
func Delegated(cfg *rest.Config, hc *http.Client) (authenticator.Request, authorizer.Authorizer, error) {
	authn, err := authenticationv1.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, nil, err
	}
	authz, err := authorizationv1.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, nil, err
	}
	b := retry
	tokens, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                &apiserver.AnonymousAuthConfig{Enabled: false},
		CacheTTL:                 TokenCacheTTL,
		TokenAccessReviewClient:  authn,
		TokenAccessReviewTimeout: 10 * time.Second,
		WebhookRetryBackoff:      &b,
	}.New()
	if err != nil {
		return nil, nil, fmt.Errorf("export authenticator: %w", err)
	}
	b2 := retry
	az, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: authz,
		AllowCacheTTL:             AllowCacheTTL,
		DenyCacheTTL:              DenyCacheTTL,
		WebhookRetryBackoff:       &b2,
	}.New()
	if err != nil {
		return nil, nil, fmt.Errorf("export authorizer: %w", err)
	}
	return Union{Certificates{}, tokens}, az, nil
}
