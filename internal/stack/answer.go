package stack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/swap-dev/swap/internal/stack/procs"
)

// WaitAnswer polls GET http://<addr><path> (with Host: host, when not "") until it
// answers 200 with the body want (trimmed; any body when want is ""), or ctx ends or
// timeout passes; the error then quotes the last answer.
func WaitAnswer(ctx context.Context, addr, host, path, want string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	err := procs.Poll(ctx, timeout, func() error {
		req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
		if err != nil {
			return err
		}
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		if body := strings.TrimSpace(string(b)); resp.StatusCode != http.StatusOK || (want != "" && body != want) {
			return fmt.Errorf("answered %d %q", resp.StatusCode, body)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("GET http://%s%s: %w", addr, path, err)
	}
	return nil
}
