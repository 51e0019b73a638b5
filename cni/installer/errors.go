package installer

import "errors"

// The installer's errors. Each is wrapped with what failed (the Node, the
// file, the flag), so errors.Is tells the kind and the message the cause.
var (
	// ErrConfig: the installer was started with settings it cannot work
	// with (a missing node name, a token lifetime below the API server's
	// minimum, a network configuration file name runtimes would not load).
	ErrConfig = errors.New("invalid installer configuration")
	// ErrTokenRequest: no token could be obtained for the plugin (the Node
	// could not be read, or the TokenRequest API refused or failed).
	ErrTokenRequest = errors.New("requesting the plugin's token")
	// ErrBadNetworkConfig: the network configuration to install is not a
	// CNI network configuration list (bad JSON, no name, no inline plugins).
	ErrBadNetworkConfig = errors.New("invalid CNI network configuration list")
	// ErrNoPoolguardIPAM: the network configuration is a valid list, but no
	// plugin in it uses poolguard-ipam, so installing it would hand the
	// node's pods to another IPAM under poolguard's name.
	ErrNoPoolguardIPAM = errors.New("no plugin of the network configuration uses ipam type " + PluginName)
)
