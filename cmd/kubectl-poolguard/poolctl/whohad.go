package poolctl

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"poolguard.dev/poolguard/allocator/history"
	"poolguard.dev/poolguard/allocator/history/archive"
)

// WhoHadReport answers who-had.
type WhoHadReport struct {
	Address netip.Addr `json:"address"`
	// At is the time asked about; absent: every record of the address.
	At      *time.Time       `json:"at,omitempty"`
	Holders []history.Record `json:"holders"`
}

func whoHadCommand(o *options) *cobra.Command {
	var at string
	cmd := &cobra.Command{
		Use:   "who-had ADDRESS [--at TIME]",
		Short: "Name the pods that held an address, at a time or ever, from the attribution history",
		Long: `who-had names the pods that held ADDRESS at TIME (every pod the history
knows of without --at): namespace, name, UID, node, container ID and
interface, with when each got and released it. It reads the attribution
history (released allocations, kept for the chart's
allocator.history.retention) and the claim holding the address now.

TIME is RFC 3339 (2026-11-28T10:32:00Z, or with an offset), a local time
("2026-11-28 10:32" or "2026-11-28 10:32:05"), or a duration ago ("90m").
Times are to the second, both ends inclusive: with cooldown off, the
second an address passed from one pod to the next names both.

Exit codes: 0 found, 1 nobody held it, 2 error.`,
		Example: `  kubectl poolguard who-had 198.51.100.7 --at "2026-11-28 10:32"
  kubectl poolguard who-had 198.51.100.7 --at 2026-11-28T10:32:00Z -o json
  kubectl poolguard who-had 2001:db8::1c`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := netip.ParseAddr(args[0])
			if err != nil {
				return fmt.Errorf("%w: %q is not an IP address", ErrUsage, args[0])
			}
			r := WhoHadReport{Address: addr.Unmap()}
			var t time.Time
			if at != "" {
				if t, err = ParseTime(at, time.Now(), time.Local); err != nil {
					return err
				}
				r.At = &t
			}
			c, _, _, err := o.connect()
			if err != nil {
				return err
			}
			if r.Holders, err = archive.WhoHad(cmd.Context(), c.client, r.Address, t); err != nil {
				return apiError("read the attribution history (ipamhistories, ipamclaims)", err)
			}
			if err := write(cmd.OutOrStdout(), o.output, r, func(w io.Writer) { tableWhoHad(w, r) }); err != nil {
				return err
			}
			if len(r.Holders) == 0 {
				return fmt.Errorf("%w: no pod held %s%s within the history's retention", ErrNothing, r.Address, atText(r.At))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "the time asked about (RFC 3339, local \"2006-01-02 15:04[:05]\", or a duration ago such as 90m)")
	return cmd
}

func atText(t *time.Time) string {
	if t == nil {
		return ""
	}
	return " at " + t.Format(time.RFC3339)
}

// tableWhoHad renders a WhoHadReport.
func tableWhoHad(w io.Writer, r WhoHadReport) {
	if len(r.Holders) == 0 {
		fmt.Fprintf(w, "No pod held %s%s.\n", r.Address, atText(r.At))
		return
	}
	fmt.Fprintln(w, "ADDRESS\tNAMESPACE\tPOD\tPOD UID\tNODE\tCONTAINER\tIF\tPOOL\tFROM\tTO")
	for _, h := range r.Holders {
		to := "(holds it)"
		if !h.Open() {
			to = h.To.Local().Format(time.RFC3339)
		}
		cid := h.ContainerID
		if len(cid) > 13 {
			cid = cid[:13]
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Address, h.Namespace, h.Pod, orDash(h.PodUID), h.Node, cid, h.IfName, h.Pool,
			h.From.Local().Format(time.RFC3339), to)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// timeLayouts are the local-time forms --at accepts besides RFC 3339.
var timeLayouts = []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02T15:04"}

// ParseTime reads --at: RFC 3339, a local time in loc, or a duration
// before now.
func ParseTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t, nil
		}
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "-")); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%w: --at %q: want RFC 3339 (2026-11-28T10:32:00Z), a local time (2026-11-28 10:32[:05]) or a duration ago (90m)", ErrUsage, s)
}
