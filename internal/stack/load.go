package stack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Load sends GET requests through HAProxy's frontend until Stop or its time limit:
// half the workers on keep-alive connections, half with a new connection per request.
// It only ever dials loopback addresses.
type Load struct {
	Workers  int
	Start    time.Time
	MaxTime  time.Duration
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	results  [][]Result // one slice per worker
	stopped  time.Time
	stopOnce sync.Once
}

// Result is one request.
type Result struct {
	Sent  time.Time     // when the request was sent
	Took  time.Duration // until the answer was read (or the failure)
	Color string        // X-Color of a 200 answer
	Body  string        // the 200 answer's body, trimmed
	Err   string        // why it failed: transport error, or status and body
}

// StartLoad starts workers goroutines sending GET http://<frontend>/ with Host: host,
// each pausing pause between requests, for at most maxTime.
func StartLoad(frontend, host string, workers int, pause, maxTime time.Duration) (*Load, error) {
	h, _, err := net.SplitHostPort(frontend)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("load: %s is not a loopback address; the load only targets this machine", frontend)
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxTime)
	l := &Load{Workers: workers, Start: time.Now(), MaxTime: maxTime, cancel: cancel, results: make([][]Result, workers)}
	for w := range workers {
		tr := &http.Transport{DisableKeepAlives: w%2 == 1, MaxIdleConnsPerHost: 1,
			DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}
		client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer tr.CloseIdleConnections()
			for ctx.Err() == nil {
				r := get(ctx, client, "http://"+frontend+"/", host)
				l.results[w] = append(l.results[w], r)
				if pause > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(pause):
					}
				}
			}
		}()
	}
	return l, nil
}

func get(ctx context.Context, client *http.Client, url, host string) Result {
	// A request in flight when the load stops still gets its answer.
	req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), "GET", url, nil)
	req.Host = host
	r := Result{Sent: time.Now()}
	resp, err := client.Do(req)
	if err != nil {
		r.Took, r.Err = time.Since(r.Sent), err.Error()
		return r
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.Took = time.Since(r.Sent)
	switch {
	case err != nil:
		r.Err = err.Error()
	case resp.StatusCode != http.StatusOK:
		r.Err = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	default:
		r.Color, r.Body = resp.Header.Get("X-Color"), strings.TrimSpace(string(body))
	}
	return r
}

// Stop ends the load, waits for the requests in flight and returns every result.
func (l *Load) Stop() []Result {
	l.stopOnce.Do(func() {
		l.cancel()
		l.wg.Wait()
		l.stopped = time.Now()
	})
	var all []Result
	for _, rs := range l.results {
		all = append(all, rs...)
	}
	return all
}

// Stopped is when Stop returned (zero before).
func (l *Load) Stopped() time.Time { return l.stopped }
