package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHealthCheck_ExitCodeTellsScriptsHealthyUnhealthyOrBadInput(t *testing.T) {
	var flaps atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ready":
			_, _ = w.Write([]byte(`{"status":"ready"}`))
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/second-fails":
			if flaps.Add(1)%2 == 0 {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}
	}))
	t.Cleanup(srv.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // in stdout
		wantErr  string   // in stderr
	}{
		{name: "a healthy URL exits 0", args: []string{srv.URL + "/ready"}, wantCode: exitOK,
			wantOut: []string{"probe 1/1: ok, status 200", "healthy: GET " + srv.URL + "/ready"}},
		{name: "rise probes that many times", args: []string{"--rise", "3", "--interval", "1ms", srv.URL + "/ready"}, wantCode: exitOK,
			wantOut: []string{"probe 1/3: ok", "probe 3/3: ok"}},
		{name: "a wrong status exits 1 and says why", args: []string{srv.URL + "/down"}, wantCode: exitFailed,
			wantOut: []string{"probe 1/1: status:", "unhealthy:"}, wantErr: "status 503, want 200-399"},
		{name: "a failure during rise exits 1", args: []string{"--rise", "3", "--interval", "1ms", srv.URL + "/second-fails"}, wantCode: exitFailed,
			wantErr: "probe 2 of 3 failed"},
		{name: "expect and body are checked", args: []string{"--expect", "200", "--body", `"ready"`, srv.URL + "/ready"}, wantCode: exitOK},
		{name: "a missing body substring exits 1", args: []string{"--body", "degraded", srv.URL + "/ready"}, wantCode: exitFailed,
			wantErr: `does not contain "degraded"`},
		{name: "an open TCP port exits 0", args: []string{strings.TrimPrefix(srv.URL, "http://")}, wantCode: exitOK,
			wantOut: []string{"healthy: tcp 127.0.0.1:"}},
		{name: "a refused TCP port exits 1", args: []string{closed}, wantCode: exitFailed, wantErr: "refused"},
		{name: "a target that is neither URL nor host:port exits 2", args: []string{"localhost"}, wantCode: exitUsage, wantErr: "bad target"},
		{name: "a bad --expect exits 2", args: []string{"--expect", "2xx", srv.URL}, wantCode: exitUsage, wantErr: "--expect"},
		{name: "--rise 0 exits 2", args: []string{"--rise", "0", srv.URL}, wantCode: exitUsage, wantErr: "--rise"},
		{name: "--body with host:port exits 2", args: []string{"--body", "x", closed}, wantCode: exitUsage, wantErr: "need an http:// URL"},
		{name: "no target exits 2", args: nil, wantCode: exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := execute(append([]string{"health", "check"}, tt.args...), &out, &errOut)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out.String(), errOut.String())
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out.String(), want) {
					t.Errorf("stdout %q does not contain %q", out.String(), want)
				}
			}
			if !strings.Contains(errOut.String(), tt.wantErr) {
				t.Errorf("stderr %q does not contain %q", errOut.String(), tt.wantErr)
			}
		})
	}
}

func TestHealthCheck_PrintsJSONWithOutputJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	var out, errOut bytes.Buffer
	code := execute([]string{"health", "check", "--output", "json", "--expect", "418", srv.URL}, &out, &errOut)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var got healthCheckResult
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out.String())
	}
	if !got.Healthy || len(got.Probes) != 1 || got.Probes[0].Status != 418 || got.Probes[0].Reason != "ok" {
		t.Errorf("got %+v, want one healthy probe with status 418", got)
	}
}
