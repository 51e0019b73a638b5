package harness

// StopWebhook stops the in-process webhook and leaves the control plane and
// the webhook configurations in place: what the cluster sees when every
// webhook replica is down. Stop still stops the control plane afterwards.
func (e *Env) StopWebhook() error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	e.cancel = nil
	return <-e.done
}
