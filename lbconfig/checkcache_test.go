package lbconfig

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swap-dev/swap/internal/testenv"
)

func TestConfigShape_IgnoresServerNamesAddressesAndCountsButNothingElse(t *testing.T) {
	base := "backend web_green\n    balance roundrobin\n    server web-green-0 127.0.0.1:32768 check inter 1s weight 100\n"
	same := []string{
		"backend web_green\n    balance roundrobin\n    server web-green-7 10.0.0.9:40001 check inter 1s weight 100\n",
		"backend web_green\n    balance roundrobin\n    server a 127.0.0.1:1 check inter 1s weight 100\n    server b [::1]:2 check inter 1s weight 100\n",
	}
	differ := []string{
		"backend web_green\n    balance roundrobin\n",
		"backend web_green\n    balance roundrobin\n    server web-green-0 127.0.0.1:32768 check inter 1s weight 100 backup\n",
		"backend web_green\n    balance roundrobin\n    server web-green-0 127.0.0.1:32768 check inter 2s weight 100\n",
		"backend web_green\n    balance leastconn\n    server web-green-0 127.0.0.1:32768 check inter 1s weight 100\n",
		"backend web_blue\n    balance roundrobin\n    server web-green-0 127.0.0.1:32768 check inter 1s weight 100\n",
	}
	want := configShape("haproxy 1", []byte(base))
	for _, c := range same {
		if got := configShape("haproxy 1", []byte(c)); got != want {
			t.Errorf("shape of\n%s differs from\n%s", c, base)
		}
	}
	for _, c := range differ {
		if got := configShape("haproxy 1", []byte(c)); got == want {
			t.Errorf("shape of\n%s equals that of\n%s", c, base)
		}
	}
	if configShape("haproxy 2", []byte(base)) == want {
		t.Error("another binary gives the same shape")
	}
}

func TestWriteFiles_ChecksEachShapeOnceAcrossProcesses(t *testing.T) {
	real, err := exec.LookPath("haproxy")
	if err != nil {
		testenv.Require(t, "haproxy", err)
	}
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	bin := filepath.Join(dir, "haproxy-counted")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho >> "+calls+"\nexec "+real+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	l := baseLayout(dir, func(string) int { return 18081 })
	write := func(servers ...Server) {
		t.Helper()
		lay := l.Clone()
		lay.Backends[0].Servers = servers
		files, err := Render(lay)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := WriteFiles(context.Background(), dir, files, WriteOptions{Binary: bin}); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		b, _ := os.ReadFile(calls)
		return strings.Count(string(b), "\n")
	}
	write(Server{Name: "web-blue-0", Addr: "127.0.0.1", Port: 32768})
	write(Server{Name: "web-blue-1", Addr: "127.0.0.1", Port: 32769}, Server{Name: "web-blue-2", Addr: "127.0.0.1", Port: 32770})
	if n := count(); n != 1 {
		t.Fatalf("haproxy -c ran %d times for one shape, want 1", n)
	}
	write(Server{Name: "web-blue-1", Addr: "127.0.0.1", Port: 32769, Backup: true})
	if n := count(); n != 2 {
		t.Fatalf("haproxy -c ran %d times for two shapes, want 2", n)
	}
	// Another process: the memory is gone, the directory's file remembers.
	shapes.Lock()
	shapes.ok = map[string]bool{}
	shapes.Unlock()
	write(Server{Name: "web-blue-5", Addr: "127.0.0.1", Port: 40000})
	if n := count(); n != 2 {
		t.Fatalf("haproxy -c ran again (%d) for a shape checked by an earlier process", n)
	}
	// A new binary checks again.
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho >> "+calls+"\nexec "+real+" \"$@\" # new\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(Server{Name: "web-blue-6", Addr: "127.0.0.1", Port: 40001})
	if n := count(); n != 3 {
		t.Fatalf("haproxy -c ran %d times after the binary changed, want 3", n)
	}
}
