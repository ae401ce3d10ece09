package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/swap-dev/swap/deployments/docker"
)

// LoadImage loads (`docker load`) a one-file image created at created, labelled with
// this run's label plus labels, and returns its ID. With tag "" the image is loaded
// untagged: dangling from the start. An image's creation time is what the engine's
// `until` filter compares; import and build always stamp "now", so this is how a test
// makes an image that is old. name makes the content (and the ID) unique.
func (d *DockerEnv) LoadImage(t testing.TB, name, tag string, created time.Time, labels map[string]string) string {
	t.Helper()
	layer := tarOf(t, map[string][]byte{"name": []byte(d.RunID + "/" + name)})
	layerSum := sha256.Sum256(layer)
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      created.UTC().Format(time.RFC3339Nano),
		"config":       map[string]any{"Labels": d.Labels(labels)},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(layerSum[:])}},
		"history":      []map[string]string{{"created": created.UTC().Format(time.RFC3339Nano)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	configSum := sha256.Sum256(config)
	configName := hex.EncodeToString(configSum[:]) + ".json"
	layerName := hex.EncodeToString(layerSum[:]) + "/layer.tar"
	var tags []string
	if tag != "" {
		tags = []string{tag}
	}
	manifest, err := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": tags, "Layers": []string{layerName}}})
	if err != nil {
		t.Fatal(err)
	}
	archive := tarOf(t, map[string][]byte{configName: config, layerName: layer, "manifest.json": manifest})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := d.Client.ImageLoad(ctx, bytes.NewReader(archive), client.ImageLoadWithQuiet(true))
	if err != nil {
		t.Fatalf("testenv: load image %s: %v", name, err)
	}
	defer resp.Body.Close()
	if err := docker.ReadStream(resp.Body, nil); err != nil {
		t.Fatalf("testenv: load image %s: %v", name, err)
	}
	return "sha256:" + hex.EncodeToString(configSum[:])
}

// tarOf is a tar of files (mode 0644), in map order.
func tarOf(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
