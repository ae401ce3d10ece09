package benchkit

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// WaitHTTP polls GET http://addr/path (with Host: host, when not "") until it answers
// 200 (or timeout).
func WaitHTTP(ctx context.Context, addr, host, path string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
		if err != nil {
			return err
		}
		req.Host = host
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("http://%s%s did not answer 200 within %s: %v", addr, path, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
