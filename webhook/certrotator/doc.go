// Package certrotator keeps poolguard-webhook's serving certificate without
// cert-manager: a CA and a serving certificate live in one Secret, every
// replica renews them when due (optimistic concurrency on the Secret decides
// between replicas), writes them into its certificate directory, where
// controller-runtime's certificate watcher reloads them without a restart,
// and injects the CA bundle into the webhook's two configurations.
//
// Nothing is generated at render time, so a GitOps tool applying the chart
// sees no churn, and a new CA is trusted (next to the old one, for as long
// as the old is valid) before any replica serves a certificate it signed.
package certrotator
