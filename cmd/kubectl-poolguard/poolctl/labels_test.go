package poolctl

import (
	"testing"

	"poolguard.dev/poolguard/webhook"
)

// TestOptOutLabelIsTheWebhooks: the plugin keeps its own copy of the label
// (it imports no component); it must be the webhook's.
func TestOptOutLabelIsTheWebhooks(t *testing.T) {
	if labelOptOut != webhook.LabelOptOut {
		t.Errorf("labelOptOut = %q, the webhook's is %q", labelOptOut, webhook.LabelOptOut)
	}
}
