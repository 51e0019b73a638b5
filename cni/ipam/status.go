package ipam

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// Status reports whether the plugin can serve ADDs: its configuration is
// valid and the API server answers.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	s, ctx, cancel, err := p.open(args)
	if err != nil {
		return cniError(err)
	}
	defer cancel()
	if _, err := s.store.Pools(ctx, true); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "poolguard-ipam: API server unavailable", err.Error())
	}
	return nil
}
