package testenv_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/go-connections/nat"
	"github.com/hashicorp/consul/api"

	"github.com/swap-dev/swap/internal/testenv"
)

const staticCfg = `
frontend fe
    bind 127.0.0.1:{{.Port "http"}}
    http-request return status 200 content-type text/plain string "fixture"
`

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestHAProxyStartsReloadsAndRestartsOnFreePorts(t *testing.T) {
	h := testenv.HAProxy(t, staticCfg)
	url := "http://" + h.Addr("http") + "/"
	check := func(when string) {
		t.Helper()
		code, body, err := get(url)
		if err != nil || code != 200 || body != "fixture" {
			t.Fatalf("%s: GET %s = %d %q %v", when, url, code, body, err)
		}
	}
	check("after start")
	before := h.WorkerPid(t)
	h.Reload(t)
	if after := h.WorkerPid(t); after == before {
		t.Fatalf("reload kept worker %d", before)
	}
	check("after reload")
	h.Restart(t)
	check("after restart")
	info, err := h.Exec("show info")
	if err != nil || !strings.Contains(info, "Version: 2.") {
		t.Fatalf("show info = %q, %v", info, err)
	}
}

func TestConsulDevAgentHasLeaderAndKV(t *testing.T) {
	c := testenv.Consul(t)
	kv := c.Client.KV()
	if _, err := kv.Put(&api.KVPair{Key: "swap/test", Value: []byte("ok")}, nil); err != nil {
		t.Fatalf("kv put: %v", err)
	}
	p, _, err := kv.Get("swap/test", nil)
	if err != nil || p == nil || string(p.Value) != "ok" {
		t.Fatalf("kv get = %v, %v", p, err)
	}
}

func TestDockerDemoImageRunsAndIsRemovedWithItsLabel(t *testing.T) {
	d := testenv.Docker(t)
	ref := d.DemoImage(t, "v1")
	ctx := context.Background()
	port := testenv.FreePort(t)
	created, err := d.Client.ContainerCreate(ctx, &container.Config{
		Image:        ref,
		Env:          []string{"COLOR=blue"},
		Labels:       d.Labels(nil),
		ExposedPorts: nat.PortSet{"8080/tcp": {}},
	}, &container.HostConfig{
		PortBindings: nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: fmt.Sprint(port)}}},
	}, nil, nil, "swap-test-"+d.RunID)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := d.Client.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start: %v", err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	testenv.WaitFor(t, 10*time.Second, "demoapp answers", func() error {
		code, body, err := get(url)
		if err != nil {
			return err
		}
		if code != 200 || body != "color=blue version=v1\n" {
			return fmt.Errorf("GET / = %d %q", code, body)
		}
		return nil
	})

	if err := d.RemoveAll(ctx); err != nil {
		t.Fatalf("RemoveAll: %v", err)
	}
	f := filters.NewArgs(filters.Arg("label", d.Label))
	cs, _ := d.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	imgs, _ := d.Client.ImageList(ctx, image.ListOptions{All: true, Filters: f})
	if len(cs) != 0 || len(imgs) != 0 {
		t.Fatalf("after RemoveAll: %d containers, %d images labelled %s", len(cs), len(imgs), d.Label)
	}
}
