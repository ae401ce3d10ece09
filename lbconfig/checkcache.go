package lbconfig

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// `haproxy -c` takes 45-90 ms, and a swap rewrites haproxy.cfg several times (servers
// staged, backups removed, the old color retired), each time with other server lines in
// the same config. The parts of a server line that change between those writes — its
// name and its address:port — are checked by Server.Validate before they are rendered
// (a name of [A-Za-z0-9._-], an IP address, a port in range), and every other word of
// the line comes from the same template. So a config is checked once per shape: the
// config with each server line's name and address:port blanked out and a run of equal
// server lines counted as one. A shape `haproxy -c` accepted before, with the same
// binary, is accepted without running it again; its digest is kept in memory and in
// the directory's .swap-checked file, so that the next swap process skips it too.

// checkedFile lists the shapes (hex SHA-256) haproxy -c accepted in a directory.
const checkedFile = ".swap-checked"

// maxChecked bounds the shapes kept in checkedFile.
const maxChecked = 64

var shapes = struct {
	sync.Mutex
	ok map[string]bool // digest -> accepted
}{ok: map[string]bool{}}

// configShape is the digest of cfg's shape for binary (its path, size and time).
func configShape(binaryID string, cfg []byte) string {
	h := sha256.New()
	h.Write([]byte(binaryID))
	h.Write([]byte{0})
	prev := ""
	for _, line := range strings.Split(string(cfg), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "server" {
			line = "server _ _ " + strings.Join(f[3:], " ")
			if line == prev {
				continue
			}
		}
		prev = line
		h.Write([]byte(line))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// binaryID names the haproxy binary as it is on disk now: a new build or an upgrade
// gets its configs checked again.
func binaryID(binary string) (string, error) {
	if binary == "" {
		binary = "haproxy"
	}
	path, err := exec.LookPath(binary)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %d %d", path, fi.Size(), fi.ModTime().UnixNano()), nil
}

// checkConfigOnce runs `haproxy -c` through r on tmp (cfg's bytes, to be installed in
// dir) unless a config of the same shape passed before with the same haproxy.
func checkConfigOnce(ctx context.Context, r CheckRunner, binary, dir string, cfg []byte, tmp string) error {
	id, err := r.Identity(ctx, binary)
	if err != nil {
		return checkConfig(ctx, r, binary, tmp) // it says what is missing
	}
	shape := configShape(id, cfg)
	if shapeAccepted(dir, shape) {
		return nil
	}
	if err := checkConfig(ctx, r, binary, tmp); err != nil {
		return err
	}
	rememberShape(dir, shape)
	return nil
}

func shapeAccepted(dir, shape string) bool {
	shapes.Lock()
	defer shapes.Unlock()
	if shapes.ok[shape] {
		return true
	}
	b, err := os.ReadFile(filepath.Join(dir, checkedFile))
	if err != nil {
		return false
	}
	for _, line := range strings.Fields(string(b)) {
		if line == shape {
			shapes.ok[shape] = true
			return true
		}
	}
	return false
}

// rememberShape records shape as accepted; failing to write the file only costs a
// check later.
func rememberShape(dir, shape string) {
	shapes.Lock()
	defer shapes.Unlock()
	shapes.ok[shape] = true
	path := filepath.Join(dir, checkedFile)
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return
	}
	lines := append(strings.Fields(string(old)), shape)
	if len(lines) > maxChecked {
		lines = lines[len(lines)-maxChecked:]
	}
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	_ = writeAtomic(path, b.Bytes(), 0o644, nil)
}
