package certmanager

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cert-manager/cert-manager/pkg/controller"
)

// modulePath is the module the controllers and the CRDs come from.
const modulePath = "github.com/cert-manager/cert-manager"

// CRDDir returns the directory holding cert-manager's CRDs (deploy/crds) in
// the very module version this package was compiled against, so that the
// CRDs always match the controllers' Go types.
//
// It finds the module from the source path the compiler recorded for one of
// its functions, which is the module cache directory the binary was built
// from. A binary built with -trimpath records no such path; CRDDir then asks
// `go list -m`, which needs the go command and the working directory inside
// poolguard's module.
func CRDDir() (string, error) {
	if dir, ok := moduleDirFromBinary(); ok {
		return filepath.Join(dir, "deploy", "crds"), nil
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", modulePath).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
		}
		return "", fmt.Errorf("locating module %s: go list: %w", modulePath, err)
	}
	dir := strings.TrimSpace(string(out))
	if !isCertManagerModule(dir) {
		return "", fmt.Errorf("locating module %s: go list gave %q, which does not hold it (is it downloaded?)", modulePath, dir)
	}
	return filepath.Join(dir, "deploy", "crds"), nil
}

// moduleDirFromBinary walks up from the source file of a cert-manager
// function compiled into this binary to the root of its module.
func moduleDirFromBinary() (string, bool) {
	pc := reflect.ValueOf(controller.NewContextFactory).Pointer()
	fn := runtime.FuncForPC(pc)
	if fn == nil {
		return "", false
	}
	file, _ := fn.FileLine(pc)
	if !filepath.IsAbs(file) { // -trimpath
		return "", false
	}
	for dir := filepath.Dir(file); ; {
		if isCertManagerModule(dir) {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// isCertManagerModule reports whether dir is the root of cert-manager's main
// module and holds its CRDs.
func isCertManagerModule(dir string) bool {
	if dir == "" {
		return false
	}
	if fi, err := os.Stat(filepath.Join(dir, "deploy", "crds")); err != nil || !fi.IsDir() {
		return false
	}
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == modulePath
		}
	}
	return false
}

// InstallCRDs creates (or updates) cert-manager's CRDs, read from CRDDir, as
// its chart's crds.enabled would, and waits until the API server serves
// them (Established).
func InstallCRDs(ctx context.Context, cfg *rest.Config) error {
	dir, err := CRDDir()
	if err != nil {
		return err
	}
	crds, err := readCRDs(dir)
	if err != nil {
		return err
	}
	scheme := kruntime.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	for _, crd := range crds {
		if err := createOrUpdate(ctx, c, crd); err != nil {
			return fmt.Errorf("installing CRD %s: %w", crd.Name, err)
		}
	}
	for _, crd := range crds {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			var got apiextensionsv1.CustomResourceDefinition
			if err := c.Get(ctx, client.ObjectKey{Name: crd.Name}, &got); err != nil {
				return false, err
			}
			return hasCondition(&got, apiextensionsv1.Established), nil
		})
		if err != nil {
			return fmt.Errorf("waiting for CRD %s to be established: %w", crd.Name, err)
		}
	}
	return nil
}

func createOrUpdate(ctx context.Context, c client.Client, crd *apiextensionsv1.CustomResourceDefinition) error {
	err := c.Create(ctx, crd.DeepCopy())
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	var existing apiextensionsv1.CustomResourceDefinition
	if err := c.Get(ctx, client.ObjectKey{Name: crd.Name}, &existing); err != nil {
		return err
	}
	existing.Spec = crd.Spec
	return c.Update(ctx, &existing)
}

func hasCondition(crd *apiextensionsv1.CustomResourceDefinition, t apiextensionsv1.CustomResourceDefinitionConditionType) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == t {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

// readCRDs decodes every CRD in the YAML files of dir.
func readCRDs(dir string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		d := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := d.Decode(&crd); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			if crd.Kind != "CustomResourceDefinition" {
				continue // an empty document
			}
			crds = append(crds, &crd)
		}
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CRDs in %s", dir)
	}
	return crds, nil
}
