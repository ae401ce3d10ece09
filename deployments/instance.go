// Package deployments says what an app is and where its instances run: the app spec and
// its validation, and the types the Docker and Consul adapters (in the docker and consul
// sub-packages) share with the switcher.
package deployments

import (
	"fmt"
	"regexp"
	"strings"
)

// Color is one of the two slots an app's instances run in.
type Color string

// The two colors.
const (
	Blue  Color = "blue"
	Green Color = "green"
)

// Colors lists both colors, blue first.
var Colors = []Color{Blue, Green}

// ParseColor accepts "blue" or "green".
func ParseColor(s string) (Color, error) {
	switch c := Color(s); c {
	case Blue, Green:
		return c, nil
	}
	return "", fmt.Errorf("color %q: must be blue or green", s)
}

// Other returns the other color.
func (c Color) Other() Color {
	if c == Blue {
		return Green
	}
	return Blue
}

func (c Color) String() string { return string(c) }

// NamePattern is what every name that can reach HAProxy's Runtime API (app, color,
// backend, server) must match.
var NamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Labels swap puts on every container it creates.
const (
	LabelApp     = "swap.app"
	LabelColor   = "swap.color"
	LabelDeploy  = "swap.deploy"
	LabelIndex   = "swap.index"
	LabelManaged = "swap.managed" // "true"
	// LabelImage is the image reference a deploy asked for; the container itself is
	// created from the image's ID, so its own image field shows only sha256:...
	LabelImage = "swap.image"
	// LabelInstallation names the swap installation that created the container (see
	// Installation). A container without it belongs to the default installation.
	LabelInstallation = "swap.installation"
	// LabelHostPort is the host port swap picked and published the app port on; swap
	// never picks a port another container carries here.
	LabelHostPort = "swap.host_port"
)

// DefaultInstallation is the installation whose consul.kv_prefix is the default, "swap".
// Containers and Consul services created before installations were told apart (no
// installation label or meta) belong to it, and only to it.
const DefaultInstallation = DefaultKVPrefix

// Installation is the identity of the swap installation whose state lives under
// kvPrefix (consul.kv_prefix): every container it creates carries it in the label
// swap.installation, every Consul service in the meta "installation", and swap acts on
// nothing that carries another. Two installations sharing a Docker host or a Consul
// agent must use different kv_prefix values.
func Installation(kvPrefix string) string {
	if p := strings.Trim(kvPrefix, "/"); p != "" {
		return p
	}
	return DefaultInstallation
}

// OwnedBy reports whether an object whose installation label or meta is got (""
// when it has none) belongs to installation want.
func OwnedBy(want, got string) bool {
	return got == want || (got == "" && want == DefaultInstallation)
}

// ObjectName is the name of an instance's container and its Consul service ID in an
// installation: the instance ID itself ("web-blue-0") in the default installation, so
// names of existing deployments stay valid, and "<installation>.<instance ID>"
// otherwise ("team.swap.web-blue-0" for kv_prefix team/swap), so two installations on
// one Docker host or Consul agent never want the same name. HAProxy server names stay
// the instance ID: each installation has its own HAProxy.
func ObjectName(installation, instanceID string) string {
	if installation == DefaultInstallation || installation == "" {
		return instanceID
	}
	return strings.ReplaceAll(installation, "/", ".") + "." + instanceID
}

// Instance is one running container of an app's color.
type Instance struct {
	App         string
	Color       Color
	Index       int    // 0..replicas-1
	Deploy      string // the deploy ID that started it
	Image       string // image reference it runs
	ImageID     string // the engine's ID of that image (sha256:...), "" when unknown
	ContainerID string
	Host        string // published host IP, 127.0.0.1 by default
	// DockerHost is the name of the Docker host (docker.hosts[].name) it runs on, ""
	// when swap runs on one engine (docker.host).
	DockerHost string
	Port       int    // published host port of the app port
	State      string // Docker's state: created, running, exited...
}

// ID is the instance's name everywhere: container name, Consul service ID, HAProxy
// server name: "<app>-<color>-<index>".
func (i Instance) ID() string { return InstanceID(i.App, i.Color, i.Index) }

// InstanceID is "<app>-<color>-<index>".
func InstanceID(app string, c Color, index int) string {
	return fmt.Sprintf("%s-%s-%d", app, c, index)
}

// Addr is "<host>:<port>".
func (i Instance) Addr() string { return fmt.Sprintf("%s:%d", i.Host, i.Port) }
