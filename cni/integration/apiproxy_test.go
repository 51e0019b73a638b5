package integration

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// apiProxy is a loopback TLS reverse proxy in front of the test's API
// server. A plugin given its kubeconfig makes every request through it, so
// a test sees the plugin process's requests at the HTTP boundary, without
// touching the plugin's code: it counts them, and it can hold one back to
// kill the process at a chosen point. Upstream, the proxy presents the
// plugin's own credential (the test's kubeconfig).
type apiProxy struct {
	// Kubeconfig points at the proxy; pass it as netConf.Kubeconfig.
	Kubeconfig string

	mu       sync.Mutex
	idle     *sync.Cond // signalled when inflight drops to 0
	inflight int
	seen     []proxied
	hold     func(*http.Request) bool
	held     chan *http.Request
}

// proxied is one request that went through the proxy.
type proxied struct {
	Method, Path, Query string
	Status              int // the API server's answer; 0 when held back
	Start, End          time.Time
}

func (r proxied) String() string {
	s := r.Method + " " + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	return fmt.Sprintf("%s -> %d", s, r.Status)
}

// statusRecorder notes the status code the proxy answers with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets the reverse proxy flush streamed answers (watches).
func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// startAPIProxy starts a proxy for the rest of the test.
func startAPIProxy(t *testing.T) *apiProxy {
	t.Helper()
	up, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	upURL, err := url.Parse(up.Host)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := rest.TransportFor(up)
	if err != nil {
		t.Fatal(err)
	}
	p := &apiProxy{held: make(chan *http.Request, 1)}
	p.idle = sync.NewCond(&p.mu)
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(upURL) },
		Transport: tr,
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := proxied{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Start: time.Now()}
		p.mu.Lock()
		p.inflight++
		hold := p.hold != nil && p.hold(r)
		p.mu.Unlock()
		defer func() {
			rec.End = time.Now()
			p.mu.Lock()
			p.seen = append(p.seen, rec)
			if p.inflight--; p.inflight == 0 {
				p.idle.Broadcast()
			}
			p.mu.Unlock()
		}()
		if hold {
			// Never forwarded: the test kills the client meanwhile, and
			// the request ends with its connection.
			p.held <- r
			select {
			case <-r.Context().Done():
			case <-time.After(time.Minute):
				http.Error(w, "held by the test's API proxy, never released", http.StatusServiceUnavailable)
			}
			return
		}
		sw := &statusRecorder{ResponseWriter: w}
		rp.ServeHTTP(sw, r)
		rec.Status = sw.status
	}))
	srv.EnableHTTP2 = true // as the API server: the plugin multiplexes its parallel reads
	srv.StartTLS()
	t.Cleanup(srv.Close)

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["proxy"] = &clientcmdapi.Cluster{
		Server:                   srv.URL,
		CertificateAuthorityData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
	}
	cfg.AuthInfos["plugin"] = &clientcmdapi.AuthInfo{} // the proxy authenticates upstream
	cfg.Contexts["proxy"] = &clientcmdapi.Context{Cluster: "proxy", AuthInfo: "plugin"}
	cfg.CurrentContext = "proxy"
	p.Kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p.Kubeconfig); err != nil {
		t.Fatal(err)
	}
	return p
}

// reset forgets the requests seen so far.
func (p *apiProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = nil
}

// requests returns the requests seen since the last reset, in the order
// they ended. Call it once the plugin process has exited: it waits for the
// proxy to finish with them (the process may exit as soon as it has read
// its last answer, before the proxy's handler has returned).
func (p *apiProxy) requests() []proxied {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.inflight > 0 {
		p.idle.Wait()
	}
	return append([]proxied(nil), p.seen...)
}

// holdNext makes the proxy keep the next request that match accepts from
// the API server; the test then receives it from held.
func (p *apiProxy) holdNext(match func(*http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = func(r *http.Request) bool {
		if !match(r) {
			return false
		}
		p.hold = nil // one request only; p.mu is held by the caller
		return true
	}
}

// rounds groups requests into round trips: a request that started before
// the current group's last answer was in flight with the group (the plugin
// sent it without waiting for that answer); one that started after it may
// have waited for it, and opens the next group. It reads timestamps, so
// it only ever overcounts (when requests sent together happen not to
// overlap at the proxy): tests log it rather than assert it.
func rounds(reqs []proxied) int {
	byStart := slices.SortedFunc(slices.Values(reqs), func(a, b proxied) int { return a.Start.Compare(b.Start) })
	n := 0
	var end time.Time
	for _, r := range byStart {
		if n == 0 || !r.Start.Before(end) {
			n++
			end = r.End
		} else if r.End.After(end) {
			end = r.End
		}
	}
	return n
}

// describe renders requests one a line, for failure messages and logs.
func describe(reqs []proxied) string {
	var b strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&b, "\n\t%s", r)
	}
	return b.String()
}
