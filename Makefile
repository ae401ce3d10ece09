# swap — see README.md. `make` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
CONSUL_SUM := $(BIN)/.consul.go.sum

.PHONY: help deps haproxy consul build image test lint demo demo-down bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: haproxy consul ## install HAProxy (apt) and build bin/consul when missing or stale
	@echo "deps: go $$($(GO) env GOVERSION), $$(haproxy -v | head -1), $$($(BIN)/consul version | head -1)"

haproxy:
	@if command -v haproxy >/dev/null 2>&1; then \
		echo "deps: haproxy present ($$(haproxy -v | head -1 | cut -d' ' -f1-3))"; \
	else \
		echo "deps: installing haproxy with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; \
		systemctl disable --now haproxy >/dev/null 2>&1 || service haproxy stop >/dev/null 2>&1 || true; \
	fi

# bin/consul is rebuilt only when tools/consul/go.sum changed since the last build.
consul:
	@mkdir -p $(BIN)
	@if [ -x $(BIN)/consul ] && cmp -s tools/consul/go.sum $(CONSUL_SUM); then \
		echo "deps: bin/consul up to date"; \
	else \
		echo "deps: building bin/consul from tools/consul (the first build takes several minutes)"; \
		(cd tools/consul && CGO_ENABLED=0 $(GO) build -trimpath -o ../../$(BIN)/consul github.com/hashicorp/consul) \
			&& cp tools/consul/go.sum $(CONSUL_SUM); \
	fi

build: ## build bin/swap and bin/demoapp (static)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/swap ./cmd/swap
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/demoapp ./examples/demoapp

# The sidecar image (Dockerfile): FROM scratch, nothing pulled. The classic builder needs
# no network at all for it (DOCKER_BUILDKIT=1 uses BuildKit, where the engine has it).
IMAGE ?= swap:dev
DOCKER_BUILDKIT ?= 0

image: build ## the sidecar image (IMAGE=swap:dev): bin/swap FROM scratch, `swap serve` as user 65532
	DOCKER_BUILDKIT=$(DOCKER_BUILDKIT) docker build --tag $(IMAGE) .

lint: ## gofmt check and go vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

test: deps lint ## deps, gofmt, go vet, then every test with the race detector against real HAProxy, Consul, Docker
	@echo "$(GO) test -race -exec true ./...   (compile every test binary first: on a cold cache, compiling beside running tests starves them)"
	@$(GO) test -race -count=1 -exec true ./... >/dev/null
	@$(GO) build -o /dev/null ./cmd/swap   # the CLI the end-to-end tests run (cmd/swap/stack_test.go, cliBinary)
	@echo "$(GO) test -race -count=1 ./...   (results summed up by internal/testsum)"
	@set -o pipefail; $(GO) test -race -count=1 -json ./... | $(GO) run ./internal/testsum

# The demo (examples/demo) works in .demo/; DEMO_FLAGS passes flags to it (-keep, -app).
DEMO_FLAGS ?=

demo: deps build ## the demo: deploy blue, load, swap to green, summary; removes all it started
	@CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/swap-demo ./examples/demo
	@$(BIN)/swap-demo $(DEMO_FLAGS)

demo-down: ## remove everything a killed (or -keep) demo left: containers, images, HAProxy, Consul, .demo/
	@CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/swap-demo ./examples/demo
	@$(BIN)/swap-demo -down

# The benchmark suite (bench/suite): the programs below run one after the other on
# 127.0.0.1, each with -doc docs/benchmarks.md -img docs/img (and -short when
# BENCH=short). To add a program: a main package in bench/<name>/ that takes those flags
# (benchkit.RegisterFlags) and works in .<name>/ by default, and one line here.
BENCH ?= full
BENCH_SUITE += cutoverbench
BENCH_SUITE += reconcilebench
BENCH_SUITE += datapathbench
BENCH_SUITE += servemem
BENCH_SUITE += swapbench
BENCH_SUITE += healthbench

bench: deps build ## the benchmark suite (BENCH=short: the quick run): tables into docs/benchmarks.md, plots into docs/img/
	@$(GO) run ./bench/suite -mode $(BENCH) $(BENCH_SUITE)

clean: ## remove build output and the containers/images made by swap's tests
	rm -rf $(BIN)/swap $(BIN)/demoapp $(BIN)/swap-demo dist
	@ids=$$(docker ps -aq --filter label=swap.test 2>/dev/null); \
	if [ -n "$$ids" ]; then echo "clean: removing test containers"; docker rm -f $$ids >/dev/null; fi
	@ids=$$(docker images -q --filter label=swap.test 2>/dev/null | sort -u); \
	if [ -n "$$ids" ]; then echo "clean: removing test images"; docker rmi -f $$ids >/dev/null; fi
