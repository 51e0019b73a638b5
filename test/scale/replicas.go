package scale

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"poolguard.dev/poolguard/test/bench"
	"poolguard.dev/poolguard/test/chartwebhook"
	"poolguard.dev/poolguard/test/harness"
)

// Replica is one poolguard-webhook process, run with the chart's
// Deployment args and environment (chartwebhook.StandIn), on this
// machine's loopback: its ports moved so that two replicas fit, its
// metrics served plain on loopback so the harness can read them.
type Replica struct {
	Name string
	// MetricsURL serves the Prometheus metrics.
	MetricsURL string
	cmd        *exec.Cmd
	logFile    *os.File
	done       chan error
}

// BuildWebhook builds poolguard-webhook into dir.
func BuildWebhook(dir string) (string, error) {
	bin := filepath.Join(dir, "poolguard-webhook")
	if out, err := exec.Command("go", "build", "-o", bin, "poolguard.dev/poolguard/webhook/cmd/poolguard-webhook").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building poolguard-webhook: %w: %s", err, out)
	}
	return bin, nil
}

// StartReplica runs the binary as the chart's container, in dir, serving
// admission on webhookPort (the port the API server calls, for the
// replica that serves it; any free port for the other).
func StartReplica(env *harness.Env, bin, kubeconfig, dir, name string, webhookPort int) (*Replica, error) {
	dep, err := chartwebhook.Deployment()
	if err != nil {
		return nil, err
	}
	certDir, err := chartwebhook.CertVolume(env, dir)
	if err != nil {
		return nil, err
	}
	args, procEnv, err := chartwebhook.StandIn(dep, certDir, kubeconfig)
	if err != nil {
		return nil, err
	}
	ports := make([]int, 4)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	if webhookPort == 0 {
		webhookPort = ports[3]
	}
	// Later flags win: the chart's, with the ports moved to loopback.
	args = append(args,
		"--webhook-port="+strconv.Itoa(webhookPort),
		"--metrics-secure=false", fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", ports[0]),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--export-bind-address=127.0.0.1:%d", ports[2]),
	)
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	// Without the chart's GOMEMLIMIT (its memory limit): the harness
	// measures what the replica needs, which is what the limit must be
	// sized from, rather than how hard the runtime works to stay under
	// a limit sized for smaller clusters.
	cmd.Env = slices.DeleteFunc(procEnv, func(e string) bool { return strings.HasPrefix(e, "GOMEMLIMIT=") })
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, err
	}
	r := &Replica{Name: name, MetricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0]), cmd: cmd, logFile: logFile, done: make(chan error, 1)}
	go func() { r.done <- cmd.Wait() }()
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1])
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(ready)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		select {
		case err := <-r.done:
			r.done <- err
			return nil, errors.Join(fmt.Errorf("%s exited: %v; log:\n%s", name, err, r.tail()), r.Stop())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, errors.Join(fmt.Errorf("%s not ready after 2m; log:\n%s", name, r.tail()), r.Stop())
		}
	}
}

// Stop terminates the process, killing it after ten seconds.
func (r *Replica) Stop() error {
	if r == nil || r.cmd.Process == nil {
		return nil
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	var exit error // a signalled exit is what Stop asks for
	select {
	case exit = <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		exit = <-r.done
	}
	_ = exit
	return r.logFile.Close()
}

// tail returns the end of the replica's log.
func (r *Replica) tail() string {
	b, _ := os.ReadFile(r.logFile.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// RSS returns the process's resident set size in bytes (VmRSS).
func (r *Replica) RSS() (int64, error) { return rssOf(r.cmd.Process.Pid) }

func rssOf(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
}

// CPU returns the process's user+system CPU time.
func (r *Replica) CPU() time.Duration { return bench.CPUOf(r.cmd.Process.Pid) }

// Metrics scrapes the replica's metrics.
func (r *Replica) Metrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.MetricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// histogram returns the sum and count of a histogram's series whose label
// name has value (all series when name is empty).
func histogram(mf map[string]*dto.MetricFamily, metric, name, value string) (sum float64, count uint64) {
	f := mf[metric]
	if f == nil {
		return 0, 0
	}
	for _, m := range f.GetMetric() {
		if name != "" && !hasLabel(m, name, value) {
			continue
		}
		sum += m.GetHistogram().GetSampleSum()
		count += m.GetHistogram().GetSampleCount()
	}
	return sum, count
}

// gauge returns a gauge's value for the series whose label name has value.
func gauge(mf map[string]*dto.MetricFamily, metric, name, value string) (float64, bool) {
	f := mf[metric]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if name == "" || hasLabel(m, name, value) {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// freePort returns a loopback port nothing listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
