package lbconfig

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swap-dev/swap/internal/testenv"
)

// bootConfig starts HAProxy with nothing but testenv's global section and a stub
// frontend; startLayout then renders the real layout into HAProxy's directory and
// reloads, so HAProxy runs exactly what Render and WriteFiles produce.
const bootConfig = `frontend boot
    bind 127.0.0.1:{{.Port "boot"}}
    http-request return status 200
`

// lbEnv is a running HAProxy serving a rendered Layout.
type lbEnv struct {
	h      *testenv.HAProxyInstance
	layout *Layout
	c      *Client
}

// startLayout starts HAProxy, renders the layout made by build (given HAProxy's
// directory and port allocator) into that directory, reloads HAProxy onto it and
// returns a Client for its admin socket.
func startLayout(t testing.TB, build func(dir string, port func(string) int) *Layout) *lbEnv {
	t.Helper()
	h := testenv.HAProxy(t, bootConfig)
	l := build(h.Dir, h.Port)
	files, err := Render(l)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	ctx := testCtx(t)
	if _, err := WriteFiles(ctx, l.Dir, files, WriteOptions{}); err != nil {
		t.Fatalf("write files: %v", err)
	}
	h.Reload(t)
	c, err := New("unix", h.AdminSock, WithName("test"))
	if err != nil {
		t.Fatal(err)
	}
	return &lbEnv{h: h, layout: l, c: c}
}

// startBenchLayout is startLayout with baseLayout, for benchmarks.
func startBenchLayout(b *testing.B) *lbEnv { return startLayout(b, baseLayout) }

// loadLayout is baseLayout with checks that a saturated machine does not fail: the load
// tests are about routing, and a check that misses its 100ms (fastCheck) under load would
// take a server down and answer 503s that have nothing to do with a flip.
func loadLayout(dir string, port func(string) int) *Layout {
	l := baseLayout(dir, port)
	for i := range l.Backends {
		l.Backends[i].Check.Timeout = 5 * time.Second
		l.Backends[i].Server.Check = Check{Inter: 500 * time.Millisecond, Rise: 1, Fall: 3}
	}
	return l
}

// loadServers starts n backends per color and adds them to app_blue and app_green with
// the layout's check timing, waiting until all are UP.
func loadServers(t testing.TB, env *lbEnv, n int) map[string][]*backend {
	t.Helper()
	ctx := testCtx(t)
	out := map[string][]*backend{}
	for _, color := range []string{"blue", "green"} {
		for i := 0; i < n; i++ {
			b := newBackend(t, color)
			name := "app-" + color + "-" + strconv.Itoa(i)
			s, err := env.layout.NewServer("app_"+color, name, "127.0.0.1", b.port())
			if err != nil {
				t.Fatal(err)
			}
			if err := env.c.AddServer(ctx, "app_"+color, s); err != nil {
				t.Fatal(err)
			}
			out[color] = append(out[color], b)
		}
	}
	for _, color := range []string{"blue", "green"} {
		for i := 0; i < n; i++ {
			waitUp(t, env.c, "app_"+color, "app-"+color+"-"+strconv.Itoa(i))
		}
	}
	return out
}

// baseLayout is a host-routed layout in dir with two backends, app_blue and app_green,
// checked on /healthz, and no servers.
func baseLayout(dir string, port func(string) int) *Layout {
	check := HealthCheck{Type: "http", Method: "GET", Path: "/healthz", ExpectStatus: "200"}
	tmpl := Server{Check: fastCheck}
	return &Layout{
		Dir:      dir,
		Frontend: Listener{Name: "fe_main", Bind: "127.0.0.1:" + strconv.Itoa(port("fe"))},
		Preview:  Listener{Name: "fe_preview", Bind: "127.0.0.1:" + strconv.Itoa(port("preview"))},
		Routing:  RouteByHost,
		Timeouts: Timeouts{Connect: 2 * time.Second, Client: 30 * time.Second, Server: 30 * time.Second},
		Backends: []Backend{
			{Name: "app_blue", Check: check, Server: tmpl},
			{Name: "app_green", Check: check, Server: tmpl},
		},
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fastCheck makes tests quick: a check every 100ms, UP after 2 good ones.
var fastCheck = Check{Inter: 100 * time.Millisecond, Rise: 2, Fall: 2}

// backend is an HTTP server on 127.0.0.1 that answers with its color in X-Color and
// counts requests; /healthz answers 200 unless failing.
type backend struct {
	color    string
	srv      *http.Server
	ln       net.Listener
	requests atomic.Int64
	failing  atomic.Bool

	hold    chan struct{} // /hold requests wait until it is closed
	holding atomic.Int64

	mu     sync.Mutex
	starts []time.Time // when each non-check request started, if recording
	record atomic.Bool
}

func newBackend(t testing.TB, color string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{color: color, ln: ln, hold: make(chan struct{})}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		if b.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.URL.Path == "/hold" {
		b.holding.Add(1)
		select {
		case <-b.hold:
		case <-r.Context().Done():
		}
		b.holding.Add(-1)
	}
	if b.record.Load() {
		now := time.Now()
		b.mu.Lock()
		b.starts = append(b.starts, now)
		b.mu.Unlock()
	}
	b.requests.Add(1)
	w.Header().Set("X-Color", b.color)
	fmt.Fprintf(w, "color=%s\n", b.color)
}

func (b *backend) port() int { return portOf(b.ln) }

func (b *backend) server(name string) Server {
	return Server{Name: name, Addr: "127.0.0.1", Port: b.port(), Check: fastCheck}
}

// get sends one request with Host host to addr and returns the status and X-Color.
func get(t testing.TB, client *http.Client, addr, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", addr, host, err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 512)
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			break
		}
	}
	return resp.StatusCode, resp.Header.Get("X-Color")
}

// waitUp polls until the server's check status is UP.
func waitUp(t testing.TB, c *Client, backend, server string) {
	t.Helper()
	err := testenv.Poll(15*time.Second, func() error {
		st, err := c.ServerStat(context.Background(), backend, server)
		if err != nil {
			return err
		}
		if st.Status != "UP" {
			return fmt.Errorf("%s/%s is %q (%s)", backend, server, st.Status, st.CheckStatus)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func portOf(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }
