package deployments

import (
	"fmt"
	"time"

	"github.com/swap-dev/swap/statuscode"
)

// Defaults filled in by SetDefaults. docs/config.md lists the same values.
const (
	DefaultHostIP        = "127.0.0.1"
	DefaultRestartPolicy = "unless-stopped"
	DefaultHostPorts     = "32768-60999" // Linux's ephemeral range, where Docker picks too
	DefaultConsulAddress = "127.0.0.1:8500"
	DefaultConsulScheme  = "http"
	DefaultKVPrefix      = "swap"

	DefaultHAProxyDir           = "haproxy" // relative to the config file's directory
	DefaultServeShutdownTimeout = 5 * time.Minute
	DefaultHAProxyBinary        = "haproxy"
	DefaultRouting              = RoutingHost
	DefaultFrontendName         = "swap"
	DefaultPreviewName          = "swap_preview"
	DefaultConnectTimeout       = 5 * time.Second
	DefaultClientTimeout        = 30 * time.Second
	DefaultServerTimeout        = 30 * time.Second

	DefaultReplicas                = 1
	DefaultCheckType               = CheckHTTP
	DefaultCheckMethod             = "GET"
	DefaultCheckPath               = "/"
	DefaultCheckInterval           = time.Second
	DefaultCheckTimeout            = time.Second
	DefaultRise                    = 2
	DefaultFall                    = 3
	DefaultDeregisterCriticalAfter = time.Minute
	DefaultMinHealthyTime          = 2 * time.Second
	DefaultDeployTimeout           = 2 * time.Minute
	DefaultDrainTimeout            = 30 * time.Second
	DefaultStopTimeout             = 10 * time.Second
	DefaultRetain                  = 2
	DefaultHookTimeout             = 5 * time.Minute
)

// Routing modes: what the routes map is keyed by.
const (
	RoutingHost = "host" // the Host header
	RoutingPath = "path" // the longest matching path prefix
)

// Health check types.
const (
	CheckHTTP = "http"
	CheckTCP  = "tcp"
)

// SetDefaults fills every zero value that has a default (see the Default* constants),
// sets each App's Name from its key in Apps and names unnamed HAProxy instances
// "haproxy-<index>". Zero means "the default" for every field listed there: an explicit
// 0 for, say, retain or drain_timeout is replaced too. Fields whose zero is meaningful
// (scale_down_delay, verify.window, verify.max_5xx_rate, canary) are left alone.
// Nil apps are left nil for Validate to report. SetDefaults is idempotent.
func (c *Config) SetDefaults() {
	d := &c.Docker
	setDefault(&d.HostIP, DefaultHostIP)
	d.Cleanup.setDefaults()
	setDefault(&d.RestartPolicy, DefaultRestartPolicy)
	setDefault(&d.HostPorts, DefaultHostPorts)

	cs := &c.Consul
	setDefault(&cs.Address, DefaultConsulAddress)
	setDefault(&cs.Scheme, DefaultConsulScheme)
	setDefault(&cs.KVPrefix, DefaultKVPrefix)
	d.Installation = Installation(cs.KVPrefix)

	setDefault(&c.Serve.ShutdownTimeout, DefaultServeShutdownTimeout)

	h := &c.HAProxy
	setDefault(&h.Dir, DefaultHAProxyDir)
	setDefault(&h.Binary, DefaultHAProxyBinary)
	setDefault(&h.Routing, DefaultRouting)
	setDefault(&h.Frontend.Name, DefaultFrontendName)
	if h.Preview.Bind != "" {
		setDefault(&h.Preview.Name, DefaultPreviewName)
	}
	setDefault(&h.Timeouts.Connect, DefaultConnectTimeout)
	setDefault(&h.Timeouts.Client, DefaultClientTimeout)
	setDefault(&h.Timeouts.Server, DefaultServerTimeout)
	for i := range h.Instances {
		setDefault(&h.Instances[i].Name, fmt.Sprintf("haproxy-%d", i))
	}

	for name, a := range c.Apps {
		if a == nil {
			continue
		}
		a.Name = name
		a.SetDefaults()
	}
}

// SetDefaults fills the app's zero values; Config.SetDefaults calls it for every app.
// It does not set Name.
func (a *App) SetDefaults() {
	a.setPlacementDefaults()
	setDefault(&a.Replicas, DefaultReplicas)

	hc := &a.HealthCheck
	setDefault(&hc.Type, DefaultCheckType)
	if hc.Type == CheckHTTP {
		setDefault(&hc.Method, DefaultCheckMethod)
		setDefault(&hc.Path, DefaultCheckPath)
		if len(hc.ExpectStatus) == 0 {
			hc.ExpectStatus = statuscode.Default
		}
	}
	setDefault(&hc.Interval, DefaultCheckInterval)
	setDefault(&hc.Timeout, DefaultCheckTimeout)
	setDefault(&hc.Rise, DefaultRise)
	setDefault(&hc.Fall, DefaultFall)
	setDefault(&hc.DeregisterCriticalAfter, DefaultDeregisterCriticalAfter)

	setDefault(&a.MinHealthyTime, DefaultMinHealthyTime)
	setDefault(&a.DeployTimeout, DefaultDeployTimeout)
	setDefault(&a.DrainTimeout, DefaultDrainTimeout)
	setDefault(&a.StopTimeout, DefaultStopTimeout)
	setDefault(&a.Retain, DefaultRetain)
	setDefault(&a.Hooks.Timeout, DefaultHookTimeout)
	if a.AutoPromote == nil {
		yes := true
		a.AutoPromote = &yes
	}
}

// Promotes reports whether the app shifts traffic without waiting for `swap promote`
// (auto_promote, true when unset).
func (a *App) Promotes() bool { return a.AutoPromote == nil || *a.AutoPromote }

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}
