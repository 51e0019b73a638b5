// Command render-manifests regenerates deploy/ from charts/poolguard with the
// pinned helm (make manifests); a test fails when deploy/ is out of date.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"poolguard.dev/poolguard/charts"
)

func main() {
	helm := flag.String("helm", charts.DefaultHelm(), "helm binary")
	out := flag.String("out", charts.ManifestsDir(), "output directory")
	flag.Parse()
	files, err := charts.Manifests(charts.Helm{Path: *helm})
	if err != nil {
		fmt.Fprintln(os.Stderr, "render-manifests:", err)
		os.Exit(1)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "render-manifests:", err)
		os.Exit(1)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(*out, name), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "render-manifests:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", filepath.Join(*out, name))
	}
}
