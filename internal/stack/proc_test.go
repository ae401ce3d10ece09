package stack

import (
	"testing"
	"time"
)

func TestStartLoad_TargetsOnlyLoopback(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:80", "example.com:80", "0.0.0.0:80", "nonsense"} {
		if l, err := StartLoad(addr, "web.demo", 1, 0, time.Second); err == nil {
			l.Stop()
			t.Errorf("StartLoad(%s) started", addr)
		}
	}
}
