package consul

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
)

// Service metadata keys swap sets on every instance it registers. Consul requires meta
// keys to match ^[a-zA-Z0-9_-]+$, be at most 128 bytes, not start with "consul-", and
// values to be at most 512 bytes, with at most 64 pairs.
const (
	MetaColor     = "color"
	MetaImage     = "image"
	MetaContainer = "container"
	MetaDeploy    = "deploy"
	MetaVersion   = "version"
	// MetaInstallation is the swap installation that registered the service (see
	// deployments.Installation). A service without it belongs to the default one.
	MetaInstallation = "installation"
)

// ErrNotOurs: a service with the ID swap needs, or was asked to remove, belongs to
// another swap installation (or is not swap's); swap leaves it alone.
var ErrNotOurs = errors.New("service belongs to another swap installation")

// Installation is the swap installation this registry acts for: the one of its KV
// prefix. Its services carry it in the meta "installation", and it lists and
// deregisters no service that carries another.
func (r *Registry) Installation() string { return deployments.Installation(r.prefix) }

// ServiceID is the Consul service ID of instance instanceID ("web-blue-0") in this
// installation: deployments.ObjectName, so installations sharing an agent never register
// the same ID.
func (r *Registry) ServiceID(instanceID string) string {
	return deployments.ObjectName(r.Installation(), instanceID)
}

// Check defaults for fields the health check leaves zero.
const (
	DefaultCheckInterval = 5 * time.Second
	DefaultCheckTimeout  = 2 * time.Second
)

// Consul's limits on service metadata.
const (
	metaKeyMax   = 128
	metaValueMax = 512
)

var metaKeyPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// probeCheckID is the ID of the HTTP or TCP check Consul runs for service serviceID.
func probeCheckID(serviceID string) string { return serviceID + ":probe" }

// Register registers inst as an instance of service inst.App on the agent, with Consul
// probing it by check (see serviceDefinition). Registering an ID again replaces the
// service and its checks, so it is idempotent; an ID registered by another installation
// is ErrNotOurs and stays as it is.
func (r *Registry) Register(ctx context.Context, inst deployments.Instance, check deployments.HealthCheck, version string) error {
	svc, err := serviceDefinition(inst, check, version, r.Installation())
	if err != nil {
		return err
	}
	return r.register(ctx, svc)
}

// register puts svc on the agent, replacing the service and the checks of its ID,
// unless another installation registered that ID (ErrNotOurs).
func (r *Registry) register(ctx context.Context, svc *api.AgentServiceRegistration) error {
	if err := r.checkOwner(ctx, svc.ID, "register"); err != nil {
		return err
	}
	color := svc.Meta[MetaColor]
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := r.client.Agent().ServiceRegisterOpts(svc, opts); err != nil {
		return r.fail(fmt.Sprintf("register %s (app %s, color %s)", svc.ID, svc.Name, color), err)
	}
	r.log.Debug("registered", zap.String("service", svc.ID), zap.String("app", svc.Name),
		zap.String("color", color), zap.Int("checks", len(svc.Checks)))
	return nil
}

// serviceDefinition builds the agent registration of inst in installation: service
// name = app, ID = deployments.ObjectName(installation, inst.ID()), tags [color,
// version], meta {color, image, container, deploy, version, installation}, address and
// port the published host address, and the check Consul runs (probeCheck). It checks
// what Consul would refuse later with a less helpful message.
func serviceDefinition(inst deployments.Instance, check deployments.HealthCheck, version, installation string) (*api.AgentServiceRegistration, error) {
	id := deployments.ObjectName(installation, inst.ID())
	what := fmt.Sprintf("consul: register %s", id)
	if !deployments.NamePattern.MatchString(inst.App) {
		return nil, fmt.Errorf("%s: app name %q must match %s", what, inst.App, deployments.NamePattern)
	}
	if _, err := deployments.ParseColor(string(inst.Color)); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if inst.Host == "" || inst.Port <= 0 || inst.Port > 65535 {
		return nil, fmt.Errorf("%s: needs the published host and port, got %q:%d; is the container running with its port published?", what, inst.Host, inst.Port)
	}
	meta := map[string]string{
		MetaColor:     string(inst.Color),
		MetaImage:     inst.Image,
		MetaContainer: inst.ContainerID,
		MetaDeploy:    inst.Deploy,
	}
	if installation != "" {
		meta[MetaInstallation] = installation
	}
	if version != "" {
		meta[MetaVersion] = version
	}
	for k, v := range meta {
		if v == "" {
			delete(meta, k)
			continue
		}
		if err := validMeta(k, v); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	tags := []string{string(inst.Color)}
	if version != "" && version != string(inst.Color) {
		tags = append(tags, version)
	}
	svc := &api.AgentServiceRegistration{
		ID:      id,
		Name:    inst.App,
		Tags:    tags,
		Meta:    meta,
		Address: inst.Host,
		Port:    inst.Port,
	}
	c, err := probeCheck(id, inst, check)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if d := check.DeregisterCriticalAfter; d > 0 {
		c.DeregisterCriticalServiceAfter = d.String()
	}
	svc.Checks = append(svc.Checks, c)
	return svc, nil
}

func validMeta(k, v string) error {
	switch {
	case !metaKeyPattern.MatchString(k) || len(k) > metaKeyMax || strings.HasPrefix(k, "consul-"):
		return fmt.Errorf("meta key %q: Consul wants [a-zA-Z0-9_-], at most %d bytes, not starting with consul-", k, metaKeyMax)
	case len(v) > metaValueMax:
		return fmt.Errorf("meta %s: value of %d bytes is over Consul's limit of %d", k, len(v), metaValueMax)
	}
	return nil
}

// probeCheck is the HTTP or TCP check Consul runs against the published address of
// service serviceID.
func probeCheck(serviceID string, inst deployments.Instance, hc deployments.HealthCheck) (*api.AgentServiceCheck, error) {
	interval, timeout := hc.Interval, hc.Timeout
	if interval <= 0 {
		interval = DefaultCheckInterval
	}
	if timeout <= 0 {
		timeout = min(DefaultCheckTimeout, interval)
	}
	c := &api.AgentServiceCheck{
		CheckID:  probeCheckID(serviceID),
		Interval: interval.String(),
		Timeout:  timeout.String(),
		// New instances start critical: nothing passes before it has been checked.
		Status: api.HealthCritical,
	}
	if hc.Rise > 1 {
		c.SuccessBeforePassing = hc.Rise
	}
	if hc.Fall > 1 {
		c.FailuresBeforeCritical = hc.Fall
	}
	addr := inst.Host + ":" + strconv.Itoa(inst.Port)
	typ := hc.Type
	if typ == "" {
		typ = "http"
		if hc.Path == "" {
			typ = "tcp"
		}
	}
	switch typ {
	case "http":
		path := hc.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		method := hc.Method
		if method == "" {
			method = "GET"
		}
		c.Name = fmt.Sprintf("HTTP %s %s", method, path)
		c.HTTP = "http://" + addr + path
		c.Method = method
		if hc.Host != "" {
			c.Header = map[string][]string{"Host": {hc.Host}}
		}
	case "tcp":
		c.Name = "TCP " + addr
		c.TCP = addr
	default:
		return nil, fmt.Errorf("health check type %q: Consul checks are http or tcp", hc.Type)
	}
	return c, nil
}

// Deregister removes service serviceID (and its checks) from the agent. A service that
// is not registered is not an error; one of another installation is ErrNotOurs and stays.
func (r *Registry) Deregister(ctx context.Context, serviceID string) error {
	if err := r.checkOwner(ctx, serviceID, "deregister"); err != nil {
		return err
	}
	err := r.client.Agent().ServiceDeregisterOpts(serviceID, r.query(ctx))
	if err != nil && !isNotFound(err) {
		return r.fail("deregister "+serviceID, err)
	}
	r.log.Debug("deregistered", zap.String("service", serviceID))
	return nil
}

// checkOwner fails with ErrNotOurs when the agent has a service serviceID that another
// installation registered (meta "installation"; none means the default installation).
func (r *Registry) checkOwner(ctx context.Context, serviceID, what string) error {
	svc, _, err := r.client.Agent().Service(serviceID, r.query(ctx))
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return r.fail(fmt.Sprintf("%s %s: read the registered service", what, serviceID), err)
	}
	if got := svc.Meta[MetaInstallation]; !deployments.OwnedBy(r.Installation(), got) {
		if got == "" {
			got = deployments.DefaultInstallation
		}
		return fmt.Errorf("consul: %s %s: %w: the agent's service %s was registered by the swap installation %q, not this one (%q); swap leaves it alone: give each installation its own consul.kv_prefix",
			what, serviceID, ErrNotOurs, serviceID, got, r.Installation())
	}
	return nil
}

// Check is one Consul health check of an instance or its node.
type Check struct {
	ID        string
	Name      string
	Node      string
	ServiceID string // empty for a node check
	Status    string // passing, warning or critical
	Output    string
}

// ServiceInstance is one registered instance of an app as the catalog has it.
type ServiceInstance struct {
	ID string // the Consul service ID
	// Instance is the instance ID ("web-blue-0"): ID without the installation's prefix.
	Instance  string
	Node      string
	Address   string
	Port      int
	Color     deployments.Color // meta color; empty if missing
	Version   string
	Image     string
	Container string
	Deploy    string
	Tags      []string
	Meta      map[string]string
	// Verdict is Passing's decision over the node's and the instance's checks.
	Verdict Verdict
	Checks  []Check
}

// Passing reports Verdict.Passing.
func (s ServiceInstance) Passing() bool { return s.Verdict.Passing }

// Instances lists the registered instances of app on every node that belong to this
// installation (meta "installation"), sorted by ID, with their checks and a verdict
// (warning counts as failing, see Passing). Another installation's instances of a
// service of the same name are left out.
func (r *Registry) Instances(ctx context.Context, app string) ([]ServiceInstance, error) {
	out, _, err := r.instances(ctx, app, 0, 0, true)
	return out, err
}

// instances is Instances as a blocking query: waitIndex 0 answers at once. Without
// outputs, check outputs are left out of the checks and the verdict's reason.
func (r *Registry) instances(ctx context.Context, app string, waitIndex uint64, wait time.Duration, outputs bool) ([]ServiceInstance, uint64, error) {
	q := &api.QueryOptions{WaitIndex: waitIndex, WaitTime: wait}
	entries, meta, err := r.client.Health().Service(app, "", false, q.WithContext(ctx))
	if err != nil {
		return nil, 0, r.fail("list instances of "+app, err)
	}
	out := make([]ServiceInstance, 0, len(entries))
	for _, e := range entries {
		if e == nil || e.Service == nil || e.Node == nil {
			continue
		}
		if !deployments.OwnedBy(r.Installation(), e.Service.Meta[MetaInstallation]) {
			continue
		}
		if !outputs {
			e.Checks = withoutOutputs(e.Checks)
		}
		si := toInstance(e)
		si.Instance = strings.TrimPrefix(si.ID, r.ServiceID("")) // ServiceID("") is the installation's name prefix
		out = append(out, si)
	}
	slices.SortFunc(out, func(a, b ServiceInstance) int {
		return strings.Compare(a.ID+"\x00"+a.Node, b.ID+"\x00"+b.Node)
	})
	return out, meta.LastIndex, nil
}

func withoutOutputs(checks api.HealthChecks) api.HealthChecks {
	out := make(api.HealthChecks, 0, len(checks))
	for _, c := range checks {
		if c == nil {
			continue
		}
		cc := *c
		cc.Output = ""
		out = append(out, &cc)
	}
	return out
}

func toInstance(e *api.ServiceEntry) ServiceInstance {
	s := e.Service
	addr := s.Address
	if addr == "" {
		addr = e.Node.Address
	}
	ref := ServiceRef{Node: e.Node.Node, ServiceID: s.ID}
	si := ServiceInstance{
		ID:        s.ID,
		Node:      e.Node.Node,
		Address:   addr,
		Port:      s.Port,
		Color:     deployments.Color(s.Meta[MetaColor]),
		Version:   s.Meta[MetaVersion],
		Image:     s.Meta[MetaImage],
		Container: s.Meta[MetaContainer],
		Deploy:    s.Meta[MetaDeploy],
		Tags:      slices.Clone(s.Tags),
		Meta:      s.Meta,
		Verdict:   judge(ref, e.Checks, WarningFails),
	}
	for _, c := range e.Checks {
		if c == nil {
			continue
		}
		si.Checks = append(si.Checks, Check{ID: c.CheckID, Name: c.Name, Node: c.Node,
			ServiceID: c.ServiceID, Status: c.Status, Output: c.Output})
	}
	slices.SortFunc(si.Checks, func(a, b Check) int { return strings.Compare(a.ID, b.ID) })
	return si
}
