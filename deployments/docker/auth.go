package docker

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/registry"
)

// dockerHubAuthKey is the key Docker's config file stores Docker Hub credentials under.
const dockerHubAuthKey = "https://index.docker.io/v1/"

// errCredentialHelper says credentials for a registry live in a credential helper, which
// swap does not run; the pull goes ahead without credentials.
var errCredentialHelper = errors.New("registry credentials are in a credential helper, which swap does not run")

// dockerConfigFile is what swap reads of ~/.docker/config.json.
type dockerConfigFile struct {
	Auths       map[string]dockerConfigAuth `json:"auths"`
	CredsStore  string                      `json:"credsStore"`
	CredHelpers map[string]string           `json:"credHelpers"`
}

type dockerConfigAuth struct {
	Auth          string `json:"auth"` // base64 of "user:password"
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// defaultDockerConfigPath is $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
func defaultDockerConfigPath() string {
	if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
		return filepath.Join(dir, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".docker", "config.json")
}

// registryAuthHeader returns the X-Registry-Auth value for pulling ref: the credentials
// Docker's config file at path holds for ref's registry, encoded as the Engine API wants
// them (base64url of a JSON AuthConfig). No file, or no entry for the registry, is an
// empty header (an anonymous pull). An entry kept in a credential helper is an empty
// header and errCredentialHelper, which the caller logs and goes on.
func registryAuthHeader(path, ref string) (string, error) {
	if path == "" {
		return "", nil
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	domain := reference.Domain(named)

	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read docker config %s: %w", path, err)
	}
	var cfg dockerConfigFile
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", fmt.Errorf("docker config %s is not valid JSON: %w; fix it or move it away", path, err)
	}

	key, entry, ok := findAuth(cfg.Auths, domain)
	if !ok || (entry.Auth == "" && entry.Username == "" && entry.IdentityToken == "" && entry.RegistryToken == "") {
		if _, helper := cfg.CredHelpers[domain]; helper || cfg.CredsStore != "" {
			return "", fmt.Errorf("%w (registry %s in %s)", errCredentialHelper, domain, path)
		}
		return "", nil
	}
	ac := registry.AuthConfig{
		Username:      entry.Username,
		Password:      entry.Password,
		ServerAddress: key,
		IdentityToken: entry.IdentityToken,
		RegistryToken: entry.RegistryToken,
	}
	if entry.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(entry.Auth)
		if err != nil {
			return "", fmt.Errorf("docker config %s: auths[%q].auth is not base64: %w; log in again with docker login", path, key, err)
		}
		user, pass, found := strings.Cut(string(raw), ":")
		if !found {
			return "", fmt.Errorf("docker config %s: auths[%q].auth is not user:password; log in again with docker login", path, key)
		}
		ac.Username, ac.Password = user, pass
	}
	return registry.EncodeAuthConfig(ac)
}

// findAuth finds the auths entry of a registry domain. Keys may carry a scheme and a
// path ("https://registry.example.com/v2/"); Docker Hub's key is dockerHubAuthKey.
func findAuth(auths map[string]dockerConfigAuth, domain string) (string, dockerConfigAuth, bool) {
	want := domain
	if domain == "docker.io" {
		if e, ok := auths[dockerHubAuthKey]; ok {
			return dockerHubAuthKey, e, true
		}
		want = "index.docker.io"
	}
	for key, e := range auths {
		host := key
		if i := strings.Index(host, "://"); i >= 0 {
			host = host[i+3:]
		}
		host, _, _ = strings.Cut(host, "/")
		if host == want || (domain == "docker.io" && host == "docker.io") {
			return key, e, true
		}
	}
	return "", dockerConfigAuth{}, false
}
