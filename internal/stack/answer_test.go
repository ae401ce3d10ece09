package stack

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitAnswer_WaitsForThe200WithTheBodyAndQuotesTheLastAnswer(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "web.demo" {
			http.Error(w, "wrong host "+r.Host, http.StatusNotFound)
			return
		}
		if n.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("color=blue version=v1\n"))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	ctx := context.Background()
	if err := WaitAnswer(ctx, addr, "web.demo", "/", "color=blue version=v1", 5*time.Second); err != nil {
		t.Fatalf("WaitAnswer: %v", err)
	}
	if n.Load() < 3 {
		t.Fatalf("answered after %d requests, before the server served", n.Load())
	}
	if err := WaitAnswer(ctx, addr, "web.demo", "/", "", time.Second); err != nil {
		t.Fatalf("any body: %v", err)
	}
	err := WaitAnswer(ctx, addr, "web.demo", "/", "color=green version=v2", 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), `200 "color=blue version=v1"`) {
		t.Fatalf("another body: %v, want the last answer quoted", err)
	}
	err = WaitAnswer(ctx, addr, "", "/x", "", 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "/x") {
		t.Fatalf("wrong host: %v", err)
	}
}
