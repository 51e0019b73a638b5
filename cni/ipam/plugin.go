package ipam

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/skel"
	"k8s.io/client-go/tools/clientcmd"

	"poolguard.dev/poolguard/allocator"
	"poolguard.dev/poolguard/allocator/kubestore"
)

// Plugin implements the CNI verbs. Its zero value logs to stderr.
type Plugin struct {
	// Log receives the plugin's logs; stdout is only for the result.
	Log *slog.Logger
	// Stdout receives the result; nil means os.Stdout.
	Stdout io.Writer
}

// Funcs returns the verbs for skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, GC: p.GC, Status: p.Status}
}

func (p *Plugin) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// session is what every verb sets up: the configuration, a client and the
// allocator, under the configured timeout.
type session struct {
	cfg   *Config
	store kubestore.Store // the API server itself
	cache *blockCache     // store, with the node-local copies
	alloc *allocator.Allocator
}

func (p *Plugin) open(args *skel.CmdArgs) (*session, context.Context, context.CancelFunc, error) {
	cfg, err := ParseConfig(args.StdinData)
	if err != nil {
		return nil, nil, nil, err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: ipam.kubeconfig %s: %w", ErrBadConfig, cfg.Kubeconfig, err)
	}
	rc.Timeout = cfg.Timeout
	rc.UserAgent = "poolguard-ipam"
	rc.QPS = -1 // no client-side rate limit: a handful of requests per process
	c, err := kubestore.NewClient(rc)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: client: %w", ErrBadConfig, err)
	}
	st := kubestore.Store{Client: c, History: cfg.History}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	cached := newBlockCache(st, filepath.Join(cfg.LockDir, cfg.Node))
	cached.cooldown = cfg.Cooldown
	alloc := &allocator.Allocator{Store: cached, Node: cfg.Node, Serialize: nodeLock(cfg.LockDir, cfg.Node, lockHolder(args), p.log().Warn), Cooldown: cfg.Cooldown}
	return &session{cfg: cfg, store: st, cache: cached, alloc: alloc}, ctx, cancel, nil
}

// lockHolder says who this plugin process is, for the node lock's ticket:
// another process that gives up waiting names it.
func lockHolder(args *skel.CmdArgs) string {
	id := args.ContainerID
	if len(id) > 12 {
		id = id[:12]
	}
	return fmt.Sprintf("poolguard-ipam pid %d for container %s (%s)", os.Getpid(), id, args.Args)
}
