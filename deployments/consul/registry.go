// Package consul is swap's Consul adapter: it registers instances as services with
// their checks, decides which instances pass, keeps swap's state in the KV store with
// check-and-set, takes per-app session locks, watches with blocking queries, and writes
// the config entries that point the service mesh at the live color (service-resolver,
// and a service-splitter during a canary).
//
// It is the only package of swap that imports github.com/hashicorp/consul/api; its
// exported API speaks in swap's own types. docs/consul.md describes the keys, the lock
// and the checks.
package consul

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
)

// Defaults used when the config leaves a field empty.
const (
	// DefaultAddress is used when neither consul.address nor CONSUL_HTTP_ADDR is set.
	DefaultAddress = "127.0.0.1:8500"
	// DefaultKVPrefix is the root of every key swap writes.
	DefaultKVPrefix = "swap"
)

// Sentinel errors. Every error this package returns wraps one of them or the error of
// the call that failed, with what failed and what to do next.
var (
	// ErrUnreachable: no HTTP answer from the agent (refused, timed out, TLS failed).
	ErrUnreachable = errors.New("consul is unreachable")
	// ErrPermission: the agent answered 403; the ACL token is missing or lacks a policy.
	ErrPermission = errors.New("consul denied permission")
	// ErrNoLeader: the agent answers but its cluster has no leader, so writes fail.
	ErrNoLeader = errors.New("consul has no cluster leader")
)

// Registry talks to one Consul agent. It is safe for concurrent use.
type Registry struct {
	client *api.Client
	log    *zap.Logger
	addr   string // scheme://host:port, for messages
	prefix string // KV prefix without slashes at either end
}

// New builds a client from cfg. Empty fields fall back to Consul's own environment
// variables (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE, CONSUL_CACERT,
// CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME, CONSUL_HTTP_SSL,
// CONSUL_HTTP_SSL_VERIFY), then to DefaultAddress over http. A token file wins over a
// token, as in the consul CLI. Setting any TLS file or a server name without a scheme
// selects https. New does not contact the agent: call Ping for that.
func New(cfg deployments.ConsulConfig, log *zap.Logger) (*Registry, error) {
	if log == nil {
		log = zap.NewNop()
	}
	c := api.DefaultConfig()
	if os.Getenv(api.HTTPAddrEnvName) == "" {
		c.Address = DefaultAddress
	}
	if cfg.Address != "" {
		c.Address = cfg.Address
	}
	switch cfg.Scheme {
	case "":
		t := cfg.TLS
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" {
			c.Scheme = "https"
		}
	case "http", "https":
		c.Scheme = cfg.Scheme
	default:
		return nil, fmt.Errorf("consul: scheme %q: set consul.scheme to http or https", cfg.Scheme)
	}
	if cfg.Token != "" {
		c.Token = cfg.Token
	}
	if cfg.TokenFile != "" {
		c.TokenFile = cfg.TokenFile
	}
	c.Datacenter = cfg.Datacenter
	if t := cfg.TLS; t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify {
		if (t.CertFile == "") != (t.KeyFile == "") {
			return nil, errors.New("consul: tls: cert_file and key_file go together: set both or neither")
		}
		c.TLSConfig.CAFile = t.CAFile
		c.TLSConfig.CertFile = t.CertFile
		c.TLSConfig.KeyFile = t.KeyFile
		c.TLSConfig.Address = t.ServerName
		c.TLSConfig.InsecureSkipVerify = t.InsecureSkipVerify
	}
	client, err := api.NewClient(c)
	if err != nil {
		return nil, fmt.Errorf("consul: client for %s://%s: %w; check consul.token_file and consul.tls", c.Scheme, c.Address, err)
	}
	prefix := strings.Trim(cfg.KVPrefix, "/")
	if prefix == "" {
		prefix = DefaultKVPrefix
	}
	addr := c.Scheme + "://" + c.Address
	return &Registry{
		client: client,
		log:    log.Named("consul").With(zap.String("consul", addr)),
		addr:   addr,
		prefix: prefix,
	}, nil
}

// Address is the agent's URL as used: "http://127.0.0.1:8500".
func (r *Registry) Address() string { return r.addr }

// Ping checks that the agent answers and that its cluster has a leader. Without a
// deadline on ctx it gives up after 5s.
func (r *Registry) Ping(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	leader, err := r.client.Status().LeaderWithQueryOptions(r.query(ctx))
	if err != nil {
		return r.fail("ping", err)
	}
	if leader == "" {
		return fmt.Errorf("consul: ping %s: %w; wait until its servers elect one (`consul operator raft list-peers` shows them)", r.addr, ErrNoLeader)
	}
	return nil
}

func (r *Registry) query(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{}).WithContext(ctx)
}

func (r *Registry) write(ctx context.Context) *api.WriteOptions {
	return (&api.WriteOptions{}).WithContext(ctx)
}

// fail wraps err from operation what with the agent's address and a hint matching the
// kind of failure.
func (r *Registry) fail(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if errors.Is(err, context.DeadlineExceeded) && isDialError(err) {
			return fmt.Errorf("consul: %s: %w at %s: %w; %s", what, ErrUnreachable, r.addr, err, unreachableHint)
		}
		return fmt.Errorf("consul: %s: %w", what, err)
	}
	if se, ok := statusError(err); ok && se.Code == http.StatusForbidden {
		return fmt.Errorf("consul: %s at %s: %w (%s); give swap an ACL token whose policy allows it: consul.token or consul.token_file in swap's config, or CONSUL_HTTP_TOKEN",
			what, r.addr, ErrPermission, se.Body)
	}
	if isTLSError(err) {
		return fmt.Errorf("consul: %s: %w at %s: TLS failed: %w; check consul.scheme (http or https) and consul.tls (ca_file, cert_file, key_file, server_name)",
			what, ErrUnreachable, r.addr, err)
	}
	if isDialError(err) {
		return fmt.Errorf("consul: %s: %w at %s: %w; %s", what, ErrUnreachable, r.addr, err, unreachableHint)
	}
	return fmt.Errorf("consul: %s: %w", what, err)
}

const unreachableHint = "is the Consul agent running and listening there (its -client and -http-port)? " +
	"Point swap at it with consul.address in the config or CONSUL_HTTP_ADDR"

func statusError(err error) (api.StatusError, bool) {
	var se api.StatusError
	if errors.As(err, &se) {
		return se, true
	}
	var sp *api.StatusError
	if errors.As(err, &sp) && sp != nil {
		return *sp, true
	}
	return api.StatusError{}, false
}

// isNotFound reports a 404 from the agent.
func isNotFound(err error) bool {
	se, ok := statusError(err)
	return ok && se.Code == http.StatusNotFound
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func isTLSError(err error) bool {
	var (
		rec   tls.RecordHeaderError
		ver   *tls.CertificateVerificationError
		ua    x509.UnknownAuthorityError
		host  x509.HostnameError
		inv   x509.CertificateInvalidError
		alert tls.AlertError
	)
	if errors.As(err, &rec) || errors.As(err, &ver) || errors.As(err, &ua) ||
		errors.As(err, &host) || errors.As(err, &inv) || errors.As(err, &alert) {
		return true
	}
	// An alert from the server (e.g. "certificate required") comes as a net.OpError.
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}
