package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// Ports of the control plane, on the node namespace's loopback (the
// namespace is private, so the well-known ports never collide with
// another test's).
const (
	etcdClientURL = "http://127.0.0.1:2379"
	etcdPeerURL   = "http://127.0.0.1:2380"
	apiServerPort = "6443"
)

// startControlPlane starts etcd and the API server and waits until the API
// server is ready, then starts the controller manager and the scheduler.
func (c *Cluster) startControlPlane() error {
	var err error
	if c.etcd, err = c.start("etcd", filepath.Join(c.cfg.BinDir, "etcd"),
		"--name=node",
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdClientURL,
		"--advertise-client-urls="+etcdClientURL,
		"--listen-peer-urls="+etcdPeerURL,
		"--initial-advertise-peer-urls="+etcdPeerURL,
		"--initial-cluster=node="+etcdPeerURL,
		// A throwaway cluster: durability buys nothing and costs seconds.
		"--unsafe-no-fsync=true",
	); err != nil {
		return err
	}
	if c.apiserver, err = c.start("kube-apiserver", filepath.Join(c.cfg.BinDir, "kube-apiserver"),
		"--etcd-servers="+etcdClientURL,
		// Every address of the private namespace: its loopback for the
		// components and the test, the node's address for its pods, which
		// reach the API server through the kubernetes Service.
		"--bind-address=0.0.0.0",
		"--advertise-address="+c.cfg.NodeIP.String(),
		"--secure-port="+apiServerPort,
		"--cert-dir="+filepath.Join(c.Dir, "apiserver"),
		"--tls-cert-file="+c.pki.ServingCert,
		"--tls-private-key-file="+c.pki.ServingKey,
		"--client-ca-file="+c.pki.CAFile,
		"--service-account-key-file="+c.pki.SAPub,
		"--service-account-signing-key-file="+c.pki.SAKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range="+c.cfg.ServiceRange.String(),
		// What a kubelet needs: the Node authorizer and NodeRestriction
		// confine it to its own Node and pods.
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		// The API server calls kubelets (logs, exec) as an admin.
		"--kubelet-client-certificate="+filepath.Join(c.pki.dir, "admin.crt"),
		"--kubelet-client-key="+filepath.Join(c.pki.dir, "admin.key"),
		"--kubelet-preferred-address-types=InternalIP",
		// Webhooks and aggregated APIs are called at their endpoints'
		// pod addresses, reachable from this namespace, rather than a
		// Service address only kube-proxy would translate.
		"--enable-aggregator-routing=true",
		"--profiling=false",
	); err != nil {
		return err
	}
	if err := c.waitAPIServer(60 * time.Second); err != nil {
		return err
	}
	if c.controllerManager, err = c.start("kube-controller-manager", filepath.Join(c.cfg.BinDir, "kube-controller-manager"),
		"--kubeconfig="+c.pki.ControllerManager,
		"--authentication-kubeconfig="+c.pki.ControllerManager,
		"--authorization-kubeconfig="+c.pki.ControllerManager,
		"--bind-address=127.0.0.1",
		"--leader-elect=false",
		// Each controller acts under its own service account, as in a
		// real cluster, so RBAC is exercised.
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+c.pki.SAKey,
		// Published into every namespace as kube-root-ca.crt, which each
		// pod's service account volume mounts.
		"--root-ca-file="+c.pki.CAFile,
		"--service-cluster-ip-range="+c.cfg.ServiceRange.String(),
		// The node's pods take addresses from its IPAM plugin's ranges,
		// not from a per-node podCIDR.
		"--allocate-node-cidrs=false",
	); err != nil {
		return err
	}
	c.scheduler, err = c.start("kube-scheduler", filepath.Join(c.cfg.BinDir, "kube-scheduler"),
		"--kubeconfig="+c.pki.Scheduler,
		"--authentication-kubeconfig="+c.pki.Scheduler,
		"--authorization-kubeconfig="+c.pki.Scheduler,
		"--bind-address=127.0.0.1",
		"--leader-elect=false",
	)
	return err
}

// waitAPIServer waits until the API server answers /readyz with ok.
func (c *Cluster) waitAPIServer(timeout time.Duration) error {
	return poll("kube-apiserver ready", timeout, func() (bool, error) {
		for _, p := range []*process{c.etcd, c.apiserver} {
			if done, err := p.exited(); done {
				return false, err
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return false, fmt.Errorf("/readyz: %w: %s", err, body)
		}
		return string(body) == "ok", nil
	})
}
