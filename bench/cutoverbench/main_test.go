package main

import (
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/internal/stack"
)

func answer(t0 time.Time, recvMs float64, color string) stack.Result {
	recv := t0.Add(time.Duration(recvMs * float64(time.Millisecond)))
	return stack.Result{Sent: recv.Add(-time.Millisecond), Recv: recv, Answer: stack.Answer{Status: 200, Color: color}}
}

func TestMeasure_FirstNewAndLastOld(t *testing.T) {
	t0 := time.Unix(1000, 0)
	res := []stack.Result{
		answer(t0, -5, "blue"), answer(t0, 0.5, "blue"), answer(t0, 1.5, "green"), answer(t0, 2, "blue"),
		answer(t0, 1.2, "green"), answer(t0, 9, "green"),
		{Sent: t0, Recv: t0.Add(3 * time.Millisecond), Err: "EOF"},
		{Sent: t0, Recv: t0.Add(4 * time.Millisecond), Answer: stack.Answer{Status: 503}},
	}
	res[5].Retried = true
	s, err := measure(res, t0, "blue", "green")
	if err != nil {
		t.Fatal(err)
	}
	if s.toFirstNew != 1200*time.Microsecond || s.toLastOld != 2*time.Millisecond || s.failed != 2 || s.retried != 1 || s.requests != 8 {
		t.Fatalf("measure = %+v", s)
	}
	// Old answers that all ended before the change: 0, not negative.
	s, err = measure([]stack.Result{answer(t0, -1, "blue"), answer(t0, 3, "green")}, t0, "blue", "green")
	if err != nil || s.toLastOld != 0 || s.toFirstNew != 3*time.Millisecond {
		t.Fatalf("measure = %+v, %v", s, err)
	}
}

func TestMeasure_Inconsistent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for name, c := range map[string]struct {
		res  []stack.Result
		want string
	}{
		"new color before the change": {[]stack.Result{answer(t0, -1, "green")}, "before the change"},
		"a third color":               {[]stack.Result{answer(t0, 1, "none")}, "neither"},
		"never the new color":         {[]stack.Result{answer(t0, 1, "blue")}, "no green answer"},
	} {
		if _, err := measure(c.res, t0, "blue", "green"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

func TestRatio(t *testing.T) {
	if r := ratio(100*time.Millisecond, 2*time.Millisecond); r != 50 {
		t.Fatal(r)
	}
	if r := ratio(time.Millisecond, 0); r != 1000 {
		t.Fatal(r)
	}
}
