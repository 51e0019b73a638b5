// Command poolguard-ipam is poolguard's CNI IPAM plugin. It allocates pod
// addresses from the pools frozen onto the pod by poolguard's admission
// webhook, with its state in the Kubernetes API. Logs go to stderr; stdout
// carries only the CNI result.
package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/containernetworking/cni/pkg/skel"
	cniversion "github.com/containernetworking/cni/pkg/version"

	"poolguard.dev/poolguard/cni/ipam"
)

func main() {
	// One request, then exit: collecting garbage is wasted CPU. The
	// memory limit turns the collector back on should a call ever
	// allocate far more than the few MiB one does.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(256 << 20)
	level := slog.LevelWarn
	if os.Getenv("POOLGUARD_IPAM_DEBUG") != "" {
		level = slog.LevelDebug
	}
	p := &ipam.Plugin{Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))}
	skel.PluginMainFuncs(p.Funcs(), cniversion.All, "poolguard-ipam "+version+": IP addresses from the pod's frozen poolguard pools")
}
