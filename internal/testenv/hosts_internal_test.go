package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// A host whose test process died before its cleanup (killed test binary) is removed by
// the next fixture: its namespace, veth and directory.
func TestNewDockerHostSweepsTheHostsOfDeadTestProcesses(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	// A left-over host made by hand: namespace, veth and directory, owned by a dead pid.
	left := &DockerHost{}
	left.claim(t)
	root := "swh" + strconv.Itoa(left.n) + "a"
	run(t, "ip", "link", "add", root, "type", "veth", "peer", "name", "swh"+strconv.Itoa(left.n)+"b")
	t.Cleanup(func() { _ = ipCmd("link", "del", root) })
	dir, err := os.MkdirTemp("", "swap-dockerhost-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(ownerFile(left.Name), []byte(strconv.Itoa(dead.Process.Pid)+"\n"+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	NewDockerHost(t)
	for _, p := range []string{filepath.Join("/var/run/netns", left.Name), dir, ownerFile(left.Name), "/sys/class/net/" + root} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there after the sweep (%v)", p, err)
		}
	}
}

// An LB host whose test process died before its cleanup is removed by the next one.
func TestNewLBHostSweepsTheLBHostsOfDeadTestProcesses(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	var name, root string
	for n := 254; n > 0; n-- {
		name, root = "swap-l"+strconv.Itoa(n), "swl"+strconv.Itoa(n)+"a"
		if ipCmd("netns", "add", name) == nil {
			break
		}
	}
	t.Cleanup(func() { _ = ipCmd("netns", "del", name) })
	run(t, "ip", "link", "add", root, "type", "veth", "peer", "name", root[:len(root)-1]+"b")
	t.Cleanup(func() { _ = ipCmd("link", "del", root) })
	if err := os.MkdirAll(filepath.Dir(ownerFile(name)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ownerFile(name), []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	lb := NewLBHost(t)
	if lb.Name == name {
		t.Fatalf("the new LB host took the name of the one left over, %s", name)
	}
	for _, p := range []string{filepath.Join("/var/run/netns", name), ownerFile(name), "/sys/class/net/" + root} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there after the sweep (%v)", p, err)
		}
	}
}
