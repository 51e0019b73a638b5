package poolctl

import (
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
)

// Sentinel errors of the plugin. Commands wrap them with what to do; only
// Run maps them to exit codes.
var (
	// ErrFound: drift found something, or explain -f found that the pod
	// would be refused. Not a failure of the command: exit code 1.
	ErrFound = errors.New("found")
	// ErrUsage: the command line is wrong.
	ErrUsage = errors.New("usage")
	// ErrNotInstalled: the cluster serves no IPPool of the mode asked for.
	ErrNotInstalled = errors.New("not installed")
	// ErrForbidden: the user may not read what the plugin needs.
	ErrForbidden = errors.New("forbidden")
	// ErrUnauthorized: the API server did not accept the user's
	// credentials.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotFound: the pod or namespace asked about does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNothing: who-had found no pod that held the address. Not a
	// failure of the command: exit code 1, as grep.
	ErrNothing = errors.New("nothing found")
)

// Exit codes, documented in the README: scripts and cron jobs rely on them.
const (
	// ExitOK: nothing found.
	ExitOK = 0
	// ExitFound: drift found pods to look at, or explain -f found that
	// the pod would be refused; who-had found nobody.
	ExitFound = 1
	// ExitError: the command could not answer (usage, access, cluster).
	ExitError = 2
)

// ExitCode maps a command's error to the process's exit code.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrFound), errors.Is(err, ErrNothing):
		return ExitFound
	}
	return ExitError
}

// viewerRole is the chart's ClusterRole for users of the plugin, named for
// the usual release name; the message says so.
const viewerRole = "poolguard-viewer"

// apiError turns an API error into one that says what to do. what names
// the request ("list pods in namespace payments").
func apiError(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w: cannot %s: %v; ask a cluster admin to bind the chart's ClusterRole <release>-viewer to you, e.g. kubectl create clusterrolebinding poolguard-viewer-$USER --clusterrole=%s --user=$USER", ErrForbidden, what, err, viewerRole)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w: cannot %s: the API server refused your credentials (%v); check --kubeconfig/--context or log in again", ErrUnauthorized, what, err)
	case meta.IsNoMatchError(err):
		return fmt.Errorf("%w: cannot %s: the cluster serves no such resource (%v); is poolguard installed? In a Calico-mode install use --mode calico", ErrNotInstalled, what, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: cannot %s: %v", ErrNotFound, what, err)
	}
	return fmt.Errorf("cannot %s: %w", what, err)
}
