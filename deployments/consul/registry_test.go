package consul

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
)

func TestNew_ConfigAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      string // CONSUL_HTTP_ADDR
		cfg      deployments.ConsulConfig
		wantAddr string
		wantErr  string
	}{
		{"nothing set: the local agent", "", deployments.ConsulConfig{}, "http://127.0.0.1:8500", ""},
		{"CONSUL_HTTP_ADDR when the config has no address", "10.0.0.1:8500", deployments.ConsulConfig{}, "http://10.0.0.1:8500", ""},
		{"the config wins over CONSUL_HTTP_ADDR", "10.0.0.1:8500", deployments.ConsulConfig{Address: "127.0.0.1:9500"}, "http://127.0.0.1:9500", ""},
		{"https by scheme", "", deployments.ConsulConfig{Address: "c:8501", Scheme: "https"}, "https://c:8501", ""},
		{"https implied by TLS settings", "", deployments.ConsulConfig{Address: "c:8501", TLS: deployments.TLSConfig{ServerName: "consul"}}, "https://c:8501", ""},
		{"an unknown scheme", "", deployments.ConsulConfig{Scheme: "ftp"}, "", "set consul.scheme to http or https"},
		{"a cert without its key", "", deployments.ConsulConfig{TLS: deployments.TLSConfig{CertFile: "c.pem"}}, "", "cert_file and key_file go together"},
		{"a token file that is not there", "", deployments.ConsulConfig{TokenFile: filepath.Join(dir, "missing")}, "", "consul.token_file"},
		{"a token file", "", deployments.ConsulConfig{TokenFile: tokenFile}, "http://127.0.0.1:8500", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CONSUL_HTTP_ADDR", tc.env)
			r, err := New(tc.cfg, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Address() != tc.wantAddr {
				t.Errorf("address = %s, want %s", r.Address(), tc.wantAddr)
			}
		})
	}
}

func TestPing_AnUnreachableAgentIsNamedWithAHint(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) // nothing listens there
	r, err := New(deployments.ConsulConfig{Address: addr}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 10*time.Second)
	calls := map[string]func() error{
		"ping":     func() error { return r.Ping(ctx) },
		"get":      func() error { _, _, err := r.Get(ctx, StateKey("web")); return err },
		"lock":     func() error { _, err := r.Lock(ctx, "web", LockOptions{}); return err },
		"register": func() error { return r.Register(ctx, instance("web", "blue", 0, 80), deployments.HealthCheck{}, "v1") },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("%s = %v, want ErrUnreachable", name, err)
		}
		mustContain(t, err.Error(), "http://"+addr, "is the Consul agent running", "-client", "consul.address", "CONSUL_HTTP_ADDR")
	}
}

func TestFail_APermissionDeniedNamesTheTokenSettings(t *testing.T) {
	r, err := New(deployments.ConsulConfig{Address: "127.0.0.1:8500"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = r.fail("write swap/apps/web/state", api.StatusError{Code: 403, Body: "Permission denied: token lacks permission 'key:write'"})
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("fail(403) = %v, want ErrPermission", err)
	}
	mustContain(t, err.Error(), "write swap/apps/web/state", "key:write", "consul.token", "consul.token_file", "CONSUL_HTTP_TOKEN")
	if err := r.fail("x", api.StatusError{Code: 500, Body: "boom"}); errors.Is(err, ErrPermission) || errors.Is(err, ErrUnreachable) || !isStatus(err, 500) {
		t.Errorf("fail(500) = %v: want the status error kept, not a permission or reachability error", err)
	}
}

func isStatus(err error, code int) bool {
	se, ok := statusError(err)
	return ok && se.Code == code
}

// TestTLS_AgentBehindMutualTLS puts a TLS-terminating proxy that requires a client
// certificate in front of a real agent, and records the ACL token each request carries.
func TestTLS_AgentBehindMutualTLS(t *testing.T) {
	agent := testenv.Consul(t)
	pki := newPKI(t)
	target, _ := url.Parse("http://" + agent.Addr)
	var (
		mu     sync.Mutex
		tokens []string
	)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tokens = append(tokens, r.Header.Get("X-Consul-Token"))
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below are expected
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("s3cret-from-file\n"), 0o600)
	good := deployments.TLSConfig{CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile, ServerName: "consul.test"}

	t.Run("CA, client certificate, server name and token file all apply", func(t *testing.T) {
		r, err := New(deployments.ConsulConfig{Address: addr, TLS: good, Token: "ignored", TokenFile: tokenFile}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		ctx := ctxFor(t, 10*time.Second)
		if err := r.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := r.CAS(ctx, StateKey("tls"), []byte("ok"), 0); err != nil {
			t.Fatal(err)
		}
		if pair, _, err := agent.Client.KV().Get("swap/apps/tls/state", nil); err != nil || pair == nil || string(pair.Value) != "ok" {
			t.Fatalf("the write did not reach the agent: %+v, %v", pair, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(tokens) == 0 || tokens[len(tokens)-1] != "s3cret-from-file" {
			t.Errorf("tokens sent = %q, want the token file's", tokens)
		}
	})

	t.Run("a token from the config is sent", func(t *testing.T) {
		r, err := New(deployments.ConsulConfig{Address: addr, TLS: good, Token: "s3cret"}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Ping(ctxFor(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if tokens[len(tokens)-1] != "s3cret" {
			t.Errorf("token sent = %q", tokens[len(tokens)-1])
		}
	})

	t.Run("insecure_skip_verify trusts any server certificate", func(t *testing.T) {
		tc := good
		tc.CAFile, tc.ServerName, tc.InsecureSkipVerify = "", "", true
		r, err := New(deployments.ConsulConfig{Address: addr, Scheme: "https", TLS: tc}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Ping(ctxFor(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
	})

	for _, tc := range []struct {
		name string
		tls  deployments.TLSConfig
	}{
		{"without a client certificate it fails naming the TLS settings", deployments.TLSConfig{CAFile: pki.caFile, ServerName: "consul.test"}},
		{"without the server name the certificate does not match", deployments.TLSConfig{CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile}},
		{"without the CA the server is not trusted", deployments.TLSConfig{CertFile: pki.certFile, KeyFile: pki.keyFile, ServerName: "consul.test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(deployments.ConsulConfig{Address: addr, Scheme: "https", TLS: tc.tls}, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			err = r.Ping(ctxFor(t, 10*time.Second))
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("Ping = %v, want ErrUnreachable", err)
			}
			mustContain(t, err.Error(), "https://"+addr, "TLS failed", "consul.tls")
		})
	}
}

type pki struct {
	pool                      *x509.CertPool
	server                    tls.Certificate
	caFile, certFile, keyFile string
}

// newPKI makes a CA, a server certificate for "consul.test" only (so a client must set
// the server name) and a client certificate, and writes the client's files.
func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swap test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage, dns []string) ([]byte, *ecdsa.PrivateKey) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: fmt.Sprint(dns)},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, DNSNames: dns}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	pemOf := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pemOf("EC PRIVATE KEY", b)
	}
	srvDER, srvKey := issue(2, x509.ExtKeyUsageServerAuth, []string{"consul.test"})
	server, err := tls.X509KeyPair(pemOf("CERTIFICATE", srvDER), keyPEM(srvKey))
	if err != nil {
		t.Fatal(err)
	}
	cliDER, cliKey := issue(3, x509.ExtKeyUsageClientAuth, []string{"swap"})
	p := pki{pool: x509.NewCertPool(), server: server,
		caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "client.pem"), keyFile: filepath.Join(dir, "client-key.pem")}
	p.pool.AddCert(ca)
	for path, b := range map[string][]byte{p.caFile: pemOf("CERTIFICATE", caDER), p.certFile: pemOf("CERTIFICATE", cliDER), p.keyFile: keyPEM(cliKey)} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}
