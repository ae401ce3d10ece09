//go:build tools

// Package tools pins the Consul server binary that the tests and the demo run.
// Build it with `make deps`; it lands in bin/consul.
package tools

import _ "github.com/hashicorp/consul"
