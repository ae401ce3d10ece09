package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
)

// ImportImage makes the image ref from files alone, as `docker import` does: one layer
// holding the files (each mode 0755, so a static binary runs), then changes applied as
// Dockerfile instructions (`ENTRYPOINT ["/app"]`, `ENV K=v`, `EXPOSE 8080/tcp`) and
// labels as LABEL instructions. It is a FROM-scratch image made without a build, a base
// image or a pull. A tag ref already names moves to the new image. It returns the new
// image's ID.
func (d *Driver) ImportImage(ctx context.Context, ref string, files map[string][]byte, changes []string, labels map[string]string) (string, error) {
	layer, all, err := importInput(ref, files, changes, labels)
	if err != nil {
		return "", fmt.Errorf("import image %s: %w", ref, err)
	}
	rc, err := d.cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(layer), SourceName: "-"}, ref, image.ImportOptions{Changes: all})
	if err != nil {
		return "", d.engineError("import image "+ref, err)
	}
	defer rc.Close()
	if err := ReadStream(rc, nil); err != nil {
		return "", fmt.Errorf("import image %s: %w", ref, err)
	}
	img, err := d.cli.ImageInspect(ctx, ref)
	if err != nil {
		return "", d.engineError("import image "+ref+": inspect the result", err)
	}
	d.log.Info("image imported", zap.String("image", ref), zap.String("id", img.ID))
	return img.ID, nil
}

// importInput checks ImportImage's arguments and returns the layer (a tar of files, in
// name order) and every change, labels last.
func importInput(ref string, files map[string][]byte, changes []string, labels map[string]string) ([]byte, []string, error) {
	var errs []error
	if ref == "" {
		errs = append(errs, errors.New("the image reference is empty"))
	}
	if len(files) == 0 {
		errs = append(errs, errors.New("no files: an image needs at least one"))
	}
	names := make([]string, 0, len(files))
	for name := range files {
		if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == "." || strings.HasPrefix(name, "../") || name == ".." {
			errs = append(errs, fmt.Errorf("file name %q: must be a clean relative path (demoapp, etc/app.conf)", name))
		}
		names = append(names, name)
	}
	all := append([]string(nil), changes...)
	for _, c := range changes {
		if strings.ContainsAny(c, "\r\n") {
			errs = append(errs, fmt.Errorf("change %q: must be one line", c))
		}
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := labels[k]
		if k == "" || strings.ContainsAny(k, " \t\r\n=\"") || strings.ContainsAny(v, "\r\n") {
			errs = append(errs, fmt.Errorf("label %q=%q: the key must be non-empty without spaces, quotes or '=', the value one line", k, v))
			continue
		}
		all = append(all, fmt.Sprintf(`LABEL %s="%s"`, k, strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v)))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, name := range names {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return nil, nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), all, nil
}

// ReadStream drains an engine's JSON message stream (pull, import, build or load): the
// engine reports failures inside the stream, not as an HTTP status. Each message's
// status, or a build's output (its "stream"), when it has one and no error, goes to
// status (nil: ignored). It is the one reader of these streams: swap's pulls and imports,
// and the images the tests import, build and load.
func ReadStream(r io.Reader, status func(id, status string)) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Status      string `json:"status"`
			Stream      string `json:"stream"`
			ID          string `json:"id"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read the engine's answer: %w", err)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
		if msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if status == nil {
			continue
		}
		if msg.Status != "" {
			status(msg.ID, msg.Status)
		} else if msg.Stream != "" {
			status(msg.ID, msg.Stream)
		}
	}
}

// Removed is what RemoveLabelled removed: container names and image references (or IDs
// of untagged images).
type Removed struct {
	Containers []string
	Images     []string
}

// RemoveLabelled removes what carries label ("key=value", or "key" for any value): first
// swap's containers with it (swap.managed=true; stopped with SIGTERM and timeout, then
// removed, volumes kept), then the images with it, each through RemoveImage, so an image
// any container still uses stays and is reported as ErrImageInUse. Containers with the
// label that swap does not manage are left alone. It is the teardown of something that
// labelled all it made (the demo), and is safe to run again: what is gone is skipped.
func (d *Driver) RemoveLabelled(ctx context.Context, label string, timeout time.Duration) (Removed, error) {
	var out Removed
	if label == "" || strings.HasPrefix(label, "=") {
		return out, errors.New("remove labelled: the label is empty; give key=value or key")
	}
	cf := filters.NewArgs(filters.Arg("label", label), filters.Arg("label", deployments.LabelManaged+"=true"))
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: cf})
	if err != nil {
		return out, d.engineError("list swap's containers labelled "+label, err)
	}
	var errs []error
	for _, c := range cs {
		name := c.ID
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		if err := d.stopRemove(ctx, c.ID, name, timeout); err != nil {
			errs = append(errs, err)
			continue
		}
		out.Containers = append(out.Containers, name)
	}
	imgs, err := d.cli.ImageList(ctx, image.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		return out, errors.Join(append(errs, d.engineError("list images labelled "+label, err))...)
	}
	for _, img := range imgs {
		refs := img.RepoTags
		if len(refs) == 0 || (len(refs) == 1 && refs[0] == "<none>:<none>") {
			refs = []string{img.ID}
		}
		for _, ref := range refs {
			if err := d.RemoveImage(ctx, ref); err != nil {
				if !cerrdefs.IsNotFound(err) {
					errs = append(errs, err)
				}
				continue
			}
			out.Images = append(out.Images, ref)
		}
	}
	return out, errors.Join(errs...)
}
