package poolctl

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"

	"poolguard.dev/poolguard/policy"
)

// Output formats: a table for people, JSON and YAML for scripts.
const (
	OutputTable = "table"
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// write renders a report in a format; table renders it for people.
func write(w io.Writer, format string, v any, table func(io.Writer)) error {
	switch format {
	case OutputTable, "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		table(tw)
		return tw.Flush()
	case OutputJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case OutputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("%w: -o %q: want %s, %s or %s", ErrUsage, format, OutputTable, OutputJSON, OutputYAML)
}

// tableAdmission renders an Admission.
func tableAdmission(w io.Writer, a Admission, subject string) {
	if a.Skipped != "" {
		fmt.Fprintf(w, "%s: %s.\n", subject, a.Skipped)
		if len(a.Families) > 0 {
			tableFamilies(w, a.Families, nil)
		}
		return
	}
	verdict := "would be admitted"
	if !a.Admitted {
		verdict = "would be REFUSED"
	}
	fmt.Fprintf(w, "%s %s.\n", subject, verdict)
	tableFamilies(w, a.Families, a.Provenance)
	for _, r := range a.Refusals {
		fmt.Fprintf(w, "Refused: %s\n", r)
	}
	for _, r := range a.Warnings {
		fmt.Fprintf(w, "Warning: %s\n", r)
	}
}

// tableFamilies renders one row per pool of each family.
func tableFamilies(w io.Writer, fams []FamilyPools, prov *policy.Provenance) {
	fmt.Fprintln(w, "FAMILY\tFROM\tLIST\tPOOL\tCIDR\tALLOWED\tWHY")
	var notes []string
	for _, f := range fams {
		from := sourceWords(f.Source, prov)
		list := "-"
		if f.List != nil {
			list = *f.List
		}
		if len(f.Pools) == 0 {
			fmt.Fprintf(w, "%s\t%s\t%s\t-\t-\t-\t\n", f.Family, from, list)
		}
		for _, p := range f.Pools {
			pool, cidr := dash(p.Pool), dash(p.CIDR)
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Family, from, list, pool, cidr, yesNo(p.Allowed), p.Why)
		}
		if f.Note != "" {
			notes = append(notes, f.Family+": "+f.Note)
		}
	}
	for _, n := range notes {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
}

// sourceWords says where a family's pools come from.
func sourceWords(src policy.Source, prov *policy.Provenance) string {
	switch src {
	case policy.SourcePod:
		return "pod annotation"
	case policy.SourceNamespace:
		if prov != nil && prov.Namespace != "" {
			return "namespace " + prov.Namespace + " default"
		}
		return "namespace default"
	case policy.SourceDefault:
		return "default pools"
	}
	return "fail-safe"
}

// tableNamespace renders a NamespaceReport.
func tableNamespace(w io.Writer, r NamespaceReport) {
	fmt.Fprintf(w, "Namespace %s\n", r.Namespace)
	if len(r.Defaults) == 0 {
		fmt.Fprintln(w, "Defaults: none (pods naming no pool get the Automatic default pools)")
	}
	for _, key := range policy.DefaultKeys {
		if v, ok := r.Defaults[key]; ok {
			fmt.Fprintf(w, "Default: %s=%s\n", key, v)
		}
	}
	if r.Valid {
		fmt.Fprintln(w, "Annotations: valid")
	} else {
		fmt.Fprintln(w, "Annotations: INVALID (the webhook would refuse them now)")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "Problem: %s\n", p)
	}
	for _, p := range r.Warnings {
		fmt.Fprintf(w, "Warning: %s\n", p)
	}
	fmt.Fprintln(w)
	tableAdmission(w, r.NewPod, "A pod naming no pool")
}

// tablePod renders a PodReport.
func tablePod(w io.Writer, r PodReport) {
	subject := fmt.Sprintf("Pod %s/%s", r.Namespace, r.Pod)
	if r.Skipped != "" {
		fmt.Fprintf(w, "%s: %s.\n", subject, r.Skipped)
		return
	}
	if r.Node != "" {
		subject += " on node " + r.Node
	}
	fmt.Fprintln(w, subject)
	if r.ProvenanceValid {
		fmt.Fprintf(w, "Provenance: valid %s\n", r.Provenance)
		fmt.Fprintln(w, "\nFrozen pools (checked against the pools now):")
	} else {
		fmt.Fprintf(w, "Provenance: NOT VALID: %s\n", r.ProvenanceProblem)
		fmt.Fprintf(w, "Not frozen: %s.\n", r.Unfrozen)
		if len(r.Frozen) > 0 {
			fmt.Fprintln(w, "\nThe fail-safe pools:")
		}
	}
	if len(r.Frozen) > 0 {
		tableFamilies(w, r.Frozen, r.Provenance)
	}
	fmt.Fprintln(w)
	tableAdmission(w, r.Now, "Created again now (with the pools it named itself), the pod")
	if len(r.Addresses) > 0 {
		fmt.Fprintln(w, "\nADDRESS\tPOOL\tCIDR\tEXPECTED\tWHY")
		for _, a := range r.Addresses {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a.IP, dash(a.Pool), dash(a.CIDR), yesNo(a.Expected), a.Why)
		}
	}
	if len(r.Findings) > 0 {
		fmt.Fprintln(w)
		tableFindings(w, r.Findings)
	}
}

// tableDrift renders a DriftReport.
func tableDrift(w io.Writer, r DriftReport) {
	if len(r.Findings) > 0 {
		tableFindings(w, r.Findings)
		fmt.Fprintf(w, "%d finding(s) in %d pod(s) checked", len(r.Findings), r.Checked)
	} else {
		fmt.Fprintf(w, "No drift: %d pod(s) checked", r.Checked)
	}
	var skipped []string
	if r.HostNetwork > 0 {
		skipped = append(skipped, fmt.Sprintf("%d hostNetwork pod(s)", r.HostNetwork))
	}
	if r.Finished > 0 {
		skipped = append(skipped, fmt.Sprintf("%d finished pod(s)", r.Finished))
	}
	if len(skipped) > 0 {
		fmt.Fprintf(w, "; skipped %s", strings.Join(skipped, " and "))
	}
	fmt.Fprintln(w, ".")
}

func tableFindings(w io.Writer, fs []Finding) {
	fmt.Fprintln(w, "NAMESPACE\tPOD\tKIND\tFAMILY\tDETAIL")
	for _, f := range fs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", f.Namespace, f.Pod, f.Kind, dash(f.Family), f.Detail)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
