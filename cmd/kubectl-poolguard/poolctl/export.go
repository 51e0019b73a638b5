package poolctl

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"poolguard.dev/poolguard/allocator/export"
	storev1alpha1 "poolguard.dev/poolguard/allocator/kubestore/v1alpha1"
)

// exportCommand prints what the webhook's live export serves firewalls,
// read with the user's credentials and rendered with the same package
// (export), so both print the same list.
func exportCommand(o *options) *cobra.Command {
	var (
		pool, family         string
		cidrs                bool
		table, tableFam, set string
	)
	cmd := &cobra.Command{
		Use:   "export [-n NAMESPACE] [--pool POOL] [--cidrs] [-o text|nft|json]",
		Short: "Print the addresses in use of a namespace or a pool, or the pool CIDRs, as a firewall's address list",
		Long: `export prints what the webhook's live export serves firewalls (see the
README, "Live export for firewalls"), read with your credentials:

  -n NAMESPACE             the addresses of the namespace's pods (the
                           context's namespace when neither -n nor --pool is
                           given); with --pool, only those in that pool
  --pool POOL              the addresses in use in the pool
  --cidrs [--pool POOL]    every pool's CIDR, or one pool's

Formats (-o): text (default: one address or CIDR per line, sorted, the
external-list format), nft (a script for nft -f that replaces one set per
family in one transaction: --nft-table, --nft-table-family, --nft-set),
json (with the pod holding each address). An address whose claim is being
deleted is already released and is not listed. A namespace without pods is
an empty list.

Exit codes: 0 printed (also an empty list); 2 error.`,
		Example: `  kubectl poolguard export -n payments                 # the payments pods' addresses
  kubectl poolguard export -n payments --family 4 -o nft --nft-set payments | sudo nft -f -
  kubectl poolguard export --pool trusted -o json
  kubectl poolguard export --cidrs`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, namespace, explicit, err := o.connect()
			if err != nil {
				return err
			}
			req := export.Request{Kind: export.KindNamespace, Namespace: namespace, Pool: pool}
			switch {
			case cidrs:
				req = export.Request{Kind: export.KindCIDRs, Pool: pool}
			case pool != "" && !explicit:
				req = export.Request{Kind: export.KindPool, Pool: pool}
			}
			switch o.output {
			case OutputTable, string(export.FormatText):
				req.Format = export.FormatText
			case string(export.FormatNFT), string(export.FormatJSON):
				req.Format = export.Format(o.output)
			default:
				return fmt.Errorf("%w: export -o %q: want text, nft or json", ErrUsage, o.output)
			}
			if family != "" {
				if req.Family, err = export.ParseFamily(family); err != nil {
					return fmt.Errorf("%w: --family: %v", ErrUsage, err)
				}
			}
			if req.Format != export.FormatNFT && (table != "" || tableFam != "" || set != "") {
				return fmt.Errorf("%w: --nft-table, --nft-table-family and --nft-set are for -o nft", ErrUsage)
			}
			req.NFT = export.NFT{Table: table, TableFamily: tableFam, Set: set}
			if err := req.Validate(); err != nil {
				return fmt.Errorf("%w: %v", ErrUsage, err)
			}
			list, err := c.Export(cmd.Context(), req)
			if err != nil {
				return err
			}
			return list.Render(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&pool, "pool", "", "the pool: its addresses in use, or with -n the namespace's addresses in it, or with --cidrs its CIDR")
	f.BoolVar(&cidrs, "cidrs", false, "print the pools' CIDRs instead of addresses")
	f.StringVar(&family, "family", "", "only IPv4 (4) or IPv6 (6) addresses; default both")
	f.StringVar(&table, "nft-table", "", "-o nft: the table (default "+export.DefaultTable+")")
	f.StringVar(&tableFam, "nft-table-family", "", "-o nft: the table's family: inet (default), ip or ip6")
	f.StringVar(&set, "nft-set", "", "-o nft: the sets' base name; the sets are NAME_v4 and NAME_v6 (default from the list: ns_NAMESPACE, pool_POOL, pools)")
	return cmd
}

// Export reads the pools and, for an address list, the IPAMClaims, and
// selects what req asks for.
func (c *Cluster) Export(ctx context.Context, req export.Request) (*export.List, error) {
	ix, err := c.Index(ctx)
	if err != nil {
		return nil, err
	}
	pools := export.PoolsFromIndex(ix)
	var addrs []export.Address
	if req.Kind != export.KindCIDRs {
		if c.Rules.PinDefaults {
			return nil, fmt.Errorf("%w: in Calico mode Calico's IPAM allocates and poolguard records no allocations: only --cidrs can be exported (the address lists need native mode)", ErrUsage)
		}
		var claims storev1alpha1.IPAMClaimList
		// IPAMClaims can be selected by node only: a namespace's claims
		// are found among all.
		if err := c.client.List(ctx, &claims); err != nil {
			return nil, apiError("list IPAMClaims", err)
		}
		addrs = export.AddressesFromClaims(claims.Items)
	}
	list, err := export.Select(req, pools, addrs)
	if errors.Is(err, export.ErrUnknownPool) {
		return nil, fmt.Errorf("%w: %v (kubectl get ippools lists them)", ErrNotFound, err)
	}
	return list, err
}
