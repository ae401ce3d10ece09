package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/swap-dev/swap/deployments"
)

// Configuration comes from three places, later ones winning: the YAML file (--config,
// $SWAP_CONFIG, default swap.yaml), SWAP_* environment variables (the key in upper case
// with '.' and '-' as '_': SWAP_CONSUL_ADDRESS, SWAP_APPS_WEB_IMAGE) and a few flags.
// docs/config.md is the reference. deployments.Load reads and checks the file; viper
// resolves the environment and the flags, here, and binds the flags.

const defaultConfigFile = "swap.yaml"

// Output formats of --output.
const (
	outputText = "text"
	outputJSON = "json"
)

// flagKeys maps viper keys to the global flags that set them.
var flagKeys = map[string]string{
	"config":         "config",
	"log_level":      "log-level",
	"output":         "output",
	"consul.address": "consul-address",
	"docker.host":    "docker-host",
	"server":         "server",
}

// addGlobalFlags registers swap's persistent flags on root, and checks --log-level
// and --output before any command runs (a subcommand's own PersistentPreRunE would
// replace that check: call globalOptions from it).
func addGlobalFlags(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.String("config", defaultConfigFile, "config `file` (env SWAP_CONFIG)")
	pf.String("log-level", "info", "log `level`: debug, info, warn or error (env SWAP_LOG_LEVEL)")
	pf.String("output", outputText, "output `format`: text or json (env SWAP_OUTPUT)")
	pf.String("consul-address", "", "Consul HTTP API `host:port`, overriding consul.address (env SWAP_CONSUL_ADDRESS)")
	pf.String("docker-host", "", "Docker engine `URL`, overriding docker.host (env SWAP_DOCKER_HOST)")
	pf.String("server", "", "run deploy, switch, rollback, promote, abort and resume on the `swap serve` at this URL (http://host:port or unix:///path; env SWAP_SERVER; token from SWAP_SERVE_TOKEN)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		_, err := globalOptions(cmd)
		return err
	}
}

// globals are the global settings that are not part of the config file.
type globals struct {
	LogLevel string // debug, info, warn, error
	Output   string // text or json
	Server   string // a swap serve to run operations on ("" runs them here)
}

// globalOptions reads --log-level and --output (or SWAP_LOG_LEVEL, SWAP_OUTPUT).
func globalOptions(cmd *cobra.Command) (globals, error) {
	v := newViper(cmd)
	g := globals{LogLevel: v.GetString("log_level"), Output: v.GetString("output"), Server: v.GetString("server")}
	if g.LogLevel == "" {
		g.LogLevel = "info"
	}
	if g.Output == "" {
		g.Output = outputText
	}
	if _, err := zapcore.ParseLevel(g.LogLevel); err != nil {
		return g, withCode(exitUsage, fmt.Errorf("--log-level %q: use debug, info, warn or error", g.LogLevel))
	}
	if g.Output != outputText && g.Output != outputJSON {
		return g, withCode(exitUsage, fmt.Errorf("--output %q: use text or json", g.Output))
	}
	return g, nil
}

// newViper returns a viper that sees the SWAP_* environment and cmd's global flags
// (no config file).
func newViper(cmd *cobra.Command) *viper.Viper {
	v := viper.New()
	v.SetEnvPrefix("SWAP")
	v.SetEnvKeyReplacer(deployments.EnvKeyReplacer)
	v.AutomaticEnv()
	for key, name := range flagKeys {
		if f := cmd.Flag(name); f != nil {
			_ = v.BindPFlag(key, f) // fails only for a nil flag
		}
	}
	return v
}

// optionsAndConfig is what most commands start with: the global options, then the
// config (loadConfig).
func optionsAndConfig(cmd *cobra.Command) (globals, *deployments.Config, error) {
	g, err := globalOptions(cmd)
	if err != nil {
		return g, nil, err
	}
	cfg, err := loadConfig(cmd)
	return g, cfg, err
}

// configAndLogger is optionsAndConfig and the logger at the --log-level asked for.
func configAndLogger(cmd *cobra.Command) (globals, *deployments.Config, *zap.Logger, error) {
	g, cfg, err := optionsAndConfig(cmd)
	if err != nil {
		return g, nil, nil, err
	}
	log, err := newLogger(cmd.ErrOrStderr(), g.LogLevel)
	if err != nil {
		return g, nil, nil, withCode(exitUsage, err)
	}
	return g, cfg, log, nil
}

// loadConfig reads, checks and returns the config for cmd: the file, then SWAP_*
// environment variables and flags over it, decoded, defaulted, validated, with its
// files checked. A missing or invalid config is exit code 2, with every problem listed.
func loadConfig(cmd *cobra.Command) (*deployments.Config, error) {
	v := newViper(cmd)
	path := v.GetString("config")
	if path == "" {
		path = defaultConfigFile
	}
	cfg, err := deployments.Load(path, overrides(v))
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return cfg, nil
}

// overrides is what v finds in the SWAP_* environment and the flags, for deployments.Load.
func overrides(v *viper.Viper) deployments.Lookup {
	return func(key string) (string, bool) {
		if !v.IsSet(key) {
			return "", false
		}
		return v.GetString(key), true
	}
}
