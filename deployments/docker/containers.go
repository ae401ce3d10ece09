package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
)

// One file holds the container lifecycle (start all or nothing, list, stop): start's
// rollback needs the same naming and labelling list and stop read.

// DefaultStartTimeout bounds Start's wait for its containers to run when ctx has no
// deadline.
const DefaultStartTimeout = time.Minute

// cleanupTimeout bounds the removal of what a failed Start created; it runs even when
// the caller's context is done.
const cleanupTimeout = 30 * time.Second

// pollInterval is how often Start inspects containers it waits for.
const pollInterval = 50 * time.Millisecond

// logTail is how many log lines an error about an exited container carries.
const logTail = 20

// specLabels are the containers' labels: the spec's, then swap's own (and the image's
// reference, when the spec runs an image by its ID).
func specLabels(s deployments.StartSpec, installation string, index, hostPort int) map[string]string {
	l := make(map[string]string, len(s.Labels)+7)
	for k, v := range s.Labels {
		l[k] = v
	}
	l[deployments.LabelApp] = s.App
	l[deployments.LabelColor] = string(s.Color)
	l[deployments.LabelDeploy] = s.Deploy
	l[deployments.LabelIndex] = strconv.Itoa(index)
	l[deployments.LabelManaged] = "true"
	l[deployments.LabelInstallation] = installation
	if hostPort != 0 {
		l[deployments.LabelHostPort] = strconv.Itoa(hostPort)
	}
	if s.ImageID != "" {
		// The exact image, whatever its tag names by now; the label keeps the tag for
		// humans (and List reads it back as the instance's image).
		l[deployments.LabelImage] = s.Image
	}
	return l
}

// name is the container name of an instance in the driver's installation.
func (d *Driver) name(app string, c deployments.Color, index int) string {
	return deployments.ObjectName(d.installation, deployments.InstanceID(app, c, index))
}

// owns reports whether a container's labels say swap manages it for this installation.
func (d *Driver) owns(labels map[string]string) bool {
	return labels[deployments.LabelManaged] == "true" && deployments.OwnedBy(d.installation, labels[deployments.LabelInstallation])
}

// Start creates and starts spec.Replicas containers named "<app>-<color>-<i>" (prefixed
// with "<installation>." outside the default installation, see deployments.ObjectName),
// waits until every one runs and returns them with their published ports, in index
// order. Each has the driver's restart policy, and its app port published on a host port
// the driver picks from its range and pins (see pickHostPorts), unless spec.HostPort
// fixes it or the range is "ephemeral".
//
// A container already carrying one of those names is ErrExists when swap manages it for
// this installation, app and color (unless spec.Replace), and ErrNameTaken otherwise;
// either way nothing is created. When anything fails after the first container was created, the
// containers this call created are removed before the error returns: no half-started
// color is left behind. A container that exits while Start waits is ErrExited with its
// last log lines. The image must be on the host (see EnsureImage).
func (d *Driver) Start(ctx context.Context, spec deployments.StartSpec) ([]deployments.Instance, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.HostIP == "" {
		spec.HostIP = d.hostIP
	}
	log := d.log.With(zap.String("app", spec.App), zap.String("color", string(spec.Color)), zap.String("deploy", spec.Deploy))
	what := fmt.Sprintf("start %d container(s) of %s/%s", spec.Replicas, spec.App, spec.Color)

	if err := d.checkNames(ctx, spec, log); err != nil {
		return nil, err
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStartTimeout)
		defer cancel()
	}

	var created []string
	fail := func(err error) ([]deployments.Instance, error) {
		d.removeCreated(ctx, created, log)
		return nil, err
	}
	hostPorts := make([]int, spec.Replicas)
	picked := false
	switch {
	case spec.HostPort != 0:
		hostPorts[0] = spec.HostPort
	case d.portLo != 0:
		var err error
		if hostPorts, err = d.pickHostPorts(ctx, spec.Replicas); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		picked = true
	}
	port := nat.Port(fmt.Sprintf("%d/tcp", spec.Port))
	for i := 0; i < spec.Replicas; i++ {
		name := d.name(spec.App, spec.Color, spec.Index(i))
		labelPort := 0
		if picked {
			labelPort = hostPorts[i]
		}
		cfg := &container.Config{
			Image:        spec.Run(),
			Env:          spec.Env,
			Labels:       specLabels(spec, d.installation, spec.Index(i), labelPort),
			ExposedPorts: nat.PortSet{port: struct{}{}},
			StopSignal:   "SIGTERM",
		}
		if len(spec.Command) > 0 {
			cfg.Cmd = spec.Command
		}
		if spec.StopTimeout > 0 {
			secs := int(math.Ceil(spec.StopTimeout.Seconds()))
			cfg.StopTimeout = &secs
		}
		hostPort := ""
		if hostPorts[i] != 0 {
			hostPort = strconv.Itoa(hostPorts[i])
		}
		hc := &container.HostConfig{
			PortBindings:  nat.PortMap{port: {{HostIP: spec.HostIP, HostPort: hostPort}}},
			RestartPolicy: d.restart,
		}
		resp, err := d.cli.ContainerCreate(ctx, cfg, hc, nil, nil, name)
		if err != nil {
			switch {
			case cerrdefs.IsNotFound(err):
				err = fmt.Errorf("%s: %w: %s is not on the Docker host; run EnsureImage first, or build/load it: %v", what, ErrImageNotFound, spec.Run(), err)
			case cerrdefs.IsConflict(err):
				err = fmt.Errorf("%s: create %s: the name was taken meanwhile (another swap of %s?): %w", what, name, spec.App, err)
			default:
				err = d.engineError(what+": create "+name, err)
			}
			return fail(err)
		}
		created = append(created, resp.ID)
		for _, w := range resp.Warnings {
			log.Warn("docker warning on create", zap.String("container", name), zap.String("warning", w))
		}
	}
	for i, id := range created {
		if err := d.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			name := d.name(spec.App, spec.Color, spec.Index(i))
			switch {
			case isPortInUse(err) && picked:
				err = fmt.Errorf("%s: start %s: %w: %s:%d, picked from docker.host_ports, was taken meanwhile (by a connection or another process); starting again picks another: %v",
					what, name, ErrPortInUse, spec.HostIP, hostPorts[i], err)
			case isPortInUse(err):
				err = fmt.Errorf("%s: start %s: %w: %s:%d is taken by another process; free it, choose another host port, or leave the host port 0 for an ephemeral one: %v",
					what, name, ErrPortInUse, spec.HostIP, hostPorts[i], err)
			default:
				err = d.engineError(what+": start "+name, err)
			}
			return fail(err)
		}
	}
	insts := make([]deployments.Instance, 0, len(created))
	for _, id := range created {
		inst, err := d.waitRunning(ctx, id, what)
		if err != nil {
			return fail(err)
		}
		insts = append(insts, inst)
	}
	log.Info("containers started", zap.Int("replicas", len(insts)), zap.String("image", spec.Image))
	return insts, nil
}

// checkNames makes sure the names Start needs are free, removing swap's own containers
// of this app and color first when spec.Replace says so.
func (d *Driver) checkNames(ctx context.Context, spec deployments.StartSpec, log *zap.Logger) error {
	var replace []container.InspectResponse
	for i := 0; i < spec.Replicas; i++ {
		name := d.name(spec.App, spec.Color, spec.Index(i))
		c, err := d.cli.ContainerInspect(ctx, name)
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return d.engineError(fmt.Sprintf("start %s/%s: inspect %s", spec.App, spec.Color, name), err)
		}
		l := c.Config.Labels
		if l[deployments.LabelManaged] == "true" && !deployments.OwnedBy(d.installation, l[deployments.LabelInstallation]) {
			return fmt.Errorf("start %s/%s: %w: a container named %s belongs to the swap installation %q, not to this one (%q); swap never touches another installation's containers: give this installation its own consul.kv_prefix",
				spec.App, spec.Color, ErrNameTaken, name, installationOf(l), d.installation)
		}
		if l[deployments.LabelManaged] != "true" || l[deployments.LabelApp] != spec.App || l[deployments.LabelColor] != string(spec.Color) {
			return fmt.Errorf("start %s/%s: %w: a container named %s exists without swap.managed=true for %s/%s; swap never touches it: rename or remove it yourself, or rename the app",
				spec.App, spec.Color, ErrNameTaken, name, spec.App, spec.Color)
		}
		if !spec.Replace {
			return fmt.Errorf("start %s/%s: %w: %s (deploy %s, %s) is still there; if %s is not the live color, retire it first (or start with replace); if it is live, deploy to %s instead",
				spec.App, spec.Color, ErrExists, name, l[deployments.LabelDeploy], c.State.Status, spec.Color, spec.Color.Other())
		}
		replace = append(replace, c)
	}
	for _, c := range replace {
		log.Info("replacing container", zap.String("container", strings.TrimPrefix(c.Name, "/")), zap.String("old_deploy", c.Config.Labels[deployments.LabelDeploy]))
		if err := d.stopRemove(ctx, c.ID, strings.TrimPrefix(c.Name, "/"), spec.StopTimeout); err != nil {
			return fmt.Errorf("start %s/%s: replace: %w", spec.App, spec.Color, err)
		}
	}
	return nil
}

// removeCreated force-removes containers a failed Start created. It runs on a context
// of its own: the caller's may be what failed.
func (d *Driver) removeCreated(ctx context.Context, ids []string, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, id := range ids {
		// Force: these are this call's own containers, never started or just failed.
		// Volumes stay, like everywhere else.
		err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: false})
		if err != nil && !cerrdefs.IsNotFound(err) {
			log.Error("could not remove a container of a failed start; remove it with docker rm -f", zap.String("container_id", id), zap.Error(err))
		}
	}
}

// waitRunning polls a started container until it runs with its port published, and
// returns it as an Instance. An exited container is ErrExited with its last log lines.
func (d *Driver) waitRunning(ctx context.Context, id, what string) (deployments.Instance, error) {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		c, err := d.cli.ContainerInspect(ctx, id)
		if err != nil {
			return deployments.Instance{}, d.engineError(what+": inspect "+id, err)
		}
		name := strings.TrimPrefix(c.Name, "/")
		switch st := c.State; {
		case st.Running:
			inst, err := instanceFromInspect(c)
			if err != nil {
				return deployments.Instance{}, fmt.Errorf("%s: %w", what, err)
			}
			if inst.Port != 0 {
				return inst, nil
			}
		case st.Status == "exited" || st.Status == "dead" || st.Restarting || c.RestartCount > 0:
			// A restart policy restarts a container that exits: that is an exit too.
			logs := lastLogs(ctx, d.cli, id)
			return deployments.Instance{}, fmt.Errorf("%s: %w: %s exited with code %d (%s) before it ran; check the image, command and env; its last log lines:\n%s",
				what, ErrExited, name, st.ExitCode, st.Error, logs)
		}
		select {
		case <-ctx.Done():
			return deployments.Instance{}, fmt.Errorf("%s: %s is %s, not running yet: %w", what, name, c.State.Status, ctx.Err())
		case <-ticker.C:
		}
	}
}

// lastLogs returns a container's last log lines (stdout and stderr), or a note saying
// why there are none.
func lastLogs(ctx context.Context, c client.ContainerAPIClient, id string) string {
	rc, err := c.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(logTail)})
	if err != nil {
		return fmt.Sprintf("(logs unavailable: %v)", err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		return fmt.Sprintf("%s(reading logs: %v)", buf.String(), err)
	}
	if buf.Len() == 0 {
		return "(no output)"
	}
	return strings.TrimRight(buf.String(), "\n")
}

// List returns the containers swap manages for app (all of them when app is empty) in
// this driver's installation, in any state, ordered by app, color and index. Everything is read back from the
// containers' labels and inspect data, so List recovers the state after a restart of
// swap.
func (d *Driver) List(ctx context.Context, app string) ([]deployments.Instance, error) {
	f := filters.NewArgs(filters.Arg("label", deployments.LabelManaged+"=true"))
	if d.installation != deployments.DefaultInstallation {
		// The default installation's own have the label or (older ones) none at all.
		f.Add("label", deployments.LabelInstallation+"="+d.installation)
	}
	what := "list swap's containers"
	if app != "" {
		f.Add("label", deployments.LabelApp+"="+app)
		what += " of " + app
	}
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, d.engineError(what, err)
	}
	insts := make([]deployments.Instance, 0, len(cs))
	for _, s := range cs {
		c, err := d.cli.ContainerInspect(ctx, s.ID)
		if cerrdefs.IsNotFound(err) {
			continue // removed since the list
		}
		if err != nil {
			return nil, d.engineError(what+": inspect "+s.ID, err)
		}
		if !d.owns(c.Config.Labels) {
			continue // another installation's
		}
		inst, err := instanceFromInspect(c)
		if err != nil {
			d.log.Warn("skipping a swap container with unreadable labels", zap.String("container_id", s.ID), zap.Error(err))
			continue
		}
		insts = append(insts, inst)
	}
	sort.Slice(insts, func(i, j int) bool {
		a, b := insts[i], insts[j]
		if a.App != b.App {
			return a.App < b.App
		}
		if a.Color != b.Color {
			return a.Color < b.Color
		}
		return a.Index < b.Index
	})
	return insts, nil
}

// instanceFromInspect rebuilds an Instance from a container's labels and inspect data.
// Port is the published host port of the one port swap publishes, 0 when the container
// does not run.
func instanceFromInspect(c container.InspectResponse) (deployments.Instance, error) {
	if c.ContainerJSONBase == nil || c.Config == nil {
		return deployments.Instance{}, errors.New("inspect data incomplete")
	}
	l := c.Config.Labels
	name := strings.TrimPrefix(c.Name, "/")
	color, err := deployments.ParseColor(l[deployments.LabelColor])
	if err != nil {
		return deployments.Instance{}, fmt.Errorf("container %s: label %s: %w", name, deployments.LabelColor, err)
	}
	index, err := strconv.Atoi(l[deployments.LabelIndex])
	if err != nil || index < 0 {
		return deployments.Instance{}, fmt.Errorf("container %s: label %s=%q is not an index", name, deployments.LabelIndex, l[deployments.LabelIndex])
	}
	inst := deployments.Instance{
		App:         l[deployments.LabelApp],
		Color:       color,
		Index:       index,
		Deploy:      l[deployments.LabelDeploy],
		Image:       imageRef(c),
		ImageID:     c.Image,
		ContainerID: c.ID,
	}
	if c.State != nil {
		inst.State = c.State.Status
	}
	// swap publishes exactly one port; the host config remembers which and where.
	if c.HostConfig != nil {
		for p, bindings := range c.HostConfig.PortBindings {
			if len(bindings) > 0 {
				inst.Host = bindings[0].HostIP
			}
			if c.NetworkSettings != nil {
				for _, b := range c.NetworkSettings.Ports[p] {
					if inst.Host == "" || b.HostIP == inst.Host {
						inst.Host = b.HostIP
						inst.Port, _ = strconv.Atoi(b.HostPort)
						break
					}
				}
			}
			break
		}
	}
	return inst, nil
}

// Stop stops an instance's container with SIGTERM, waits up to timeout for it to exit
// (then the engine kills it), and removes it. Its volumes stay. timeout 0 uses the
// container's own stop timeout (deployments.StartSpec.StopTimeout), else the engine's 10s.
//
// The container is found by inst.ContainerID, or by its name in this installation when
// that is empty. A container without swap.managed=true is ErrNotManaged and is left
// alone, as is one of another installation or whose labels name another app or color
// than inst. A container that is already gone is not an
// error: Stop is safe to retry.
func (d *Driver) Stop(ctx context.Context, inst deployments.Instance, timeout time.Duration) error {
	target := inst.ContainerID
	if target == "" {
		target = d.name(inst.App, inst.Color, inst.Index)
	}
	c, err := d.cli.ContainerInspect(ctx, target)
	if cerrdefs.IsNotFound(err) {
		d.log.Info("container already gone", zap.String("container", target))
		return nil
	}
	if err != nil {
		return d.engineError("stop "+target, err)
	}
	name := strings.TrimPrefix(c.Name, "/")
	l := c.Config.Labels
	if l[deployments.LabelManaged] != "true" {
		return fmt.Errorf("stop %s: %w: it has no %s=true label; swap only stops containers it created", name, ErrNotManaged, deployments.LabelManaged)
	}
	if !d.owns(l) {
		return fmt.Errorf("stop %s: %w: it belongs to the swap installation %q, not to this one (%q); swap never stops another installation's containers",
			name, ErrNotManaged, installationOf(l), d.installation)
	}
	if inst.App != "" && (l[deployments.LabelApp] != inst.App || (inst.Color != "" && l[deployments.LabelColor] != string(inst.Color))) {
		return fmt.Errorf("stop %s: %w: its labels say %s/%s, not %s/%s; refusing to stop the wrong container",
			name, ErrNotManaged, l[deployments.LabelApp], l[deployments.LabelColor], inst.App, inst.Color)
	}
	return d.stopRemove(ctx, c.ID, name, timeout)
}

// stopRemove stops (SIGTERM, then SIGKILL after timeout) and removes a managed container,
// keeping its volumes.
func (d *Driver) stopRemove(ctx context.Context, id, name string, timeout time.Duration) error {
	opts := container.StopOptions{Signal: "SIGTERM"} // API < 1.42 ignores it; the container's StopSignal is SIGTERM
	if timeout > 0 {
		secs := int(math.Ceil(timeout.Seconds()))
		opts.Timeout = &secs
	}
	if err := d.cli.ContainerStop(ctx, id, opts); err != nil && !cerrdefs.IsNotFound(err) {
		return d.engineError("stop "+name, err)
	}
	err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{RemoveVolumes: false})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return d.engineError("remove "+name, err)
	}
	d.log.Info("container stopped and removed", zap.String("container", name))
	return nil
}

// installationOf names the installation a managed container's labels say it belongs to.
func installationOf(labels map[string]string) string {
	if v := labels[deployments.LabelInstallation]; v != "" {
		return v
	}
	return deployments.DefaultInstallation
}

// pickTries bounds the random draws of pickHostPorts per port.
const pickTries = 1000

// pickHostPorts picks n distinct host ports at random in the driver's range, none of
// which any container on the host publishes now or (as swap's swap.host_port label, in
// any state, of any installation) was given. Swap's containers publish the port picked
// for them explicitly, so a restart (the restart policy, `docker restart`, the engine's
// own restart) binds the same port again or fails: it never moves to another port, and
// no later start of swap's hands a stopped or restarting container's port to another.
// A port that a connection or another process holds makes the start fail with
// ErrPortInUse; starting again picks another.
func (d *Driver) pickHostPorts(ctx context.Context, n int) ([]int, error) {
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, d.engineError("pick host ports: list containers", err)
	}
	used := map[int]bool{}
	for _, c := range cs {
		for _, p := range c.Ports {
			used[int(p.PublicPort)] = true
		}
		if v, ok := c.Labels[deployments.LabelHostPort]; ok {
			if p, err := strconv.Atoi(v); err == nil {
				used[p] = true
			}
		}
	}
	out := make([]int, 0, n)
	size := d.portHi - d.portLo + 1
	for tries := 0; len(out) < n; tries++ {
		if tries >= pickTries*n {
			return nil, fmt.Errorf("%w: no free host port found in docker.host_ports %d-%d after %d tries (%d taken by containers); widen the range",
				ErrPortInUse, d.portLo, d.portHi, tries, len(used))
		}
		p := d.portLo + rand.IntN(size)
		if used[p] {
			continue
		}
		used[p] = true
		out = append(out, p)
	}
	return out, nil
}
