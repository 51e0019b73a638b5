// Package charts renders poolguard's Helm chart (charts/poolguard) with the
// pinned helm binary the Makefile builds into bin/, for the chart's tests and
// for the kubectl-apply manifests in deploy/. The chart is the single source:
// deploy/ is generated from it, and tests hold both, and the chart's webhook
// configurations, to what the Go code builds.
package charts
