package wire

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/docker"
)

func TestRetryPortInUse(t *testing.T) {
	portTaken := fmt.Errorf("start 2 container(s) of web/green: start web-green-1: %w: address already in use", docker.ErrPortInUse)
	other := errors.New("image not found")
	ok := []deployments.Instance{{App: "web", Color: deployments.Green}}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		errs      []error // what each call returns, in order; then success
		wantCalls int
		wantErr   error
	}{
		{"a start that works is called once", context.Background(), nil, 1, nil},
		{"a port taken once is tried again and works", context.Background(), []error{portTaken}, 2, nil},
		{"a port taken on every try gives up after the attempts", context.Background(), []error{portTaken, portTaken, portTaken, portTaken}, 3, docker.ErrPortInUse},
		{"any other failure is not tried again", context.Background(), []error{other}, 1, other},
		{"a cancelled context is not tried again", cancelled, []error{portTaken}, 1, docker.ErrPortInUse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			insts, err := retryPortInUse(tc.ctx, 3, func() ([]deployments.Instance, error) {
				calls++
				if calls <= len(tc.errs) {
					return nil, tc.errs[calls-1]
				}
				return ok, nil
			})
			if calls != tc.wantCalls {
				t.Fatalf("start called %d times, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr == nil {
				if err != nil || len(insts) != 1 {
					t.Fatalf("got %v, %v; want the instances", insts, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}
