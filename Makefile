# Code Bank. `make help` lists the targets.
#
# Everything runs against real servers that the project fetches, caches (~/.cache/codebank)
# and starts itself: Java 17+ and Maven must be installed (the error says so if not).

GO       ?= go
BIN      ?= bin/codebank
PKGS     ?= ./...
# `make test` must stay well under 20 minutes on a 2-core machine.
TEST_TIMEOUT ?= 20m

.DEFAULT_GOAL := help

##@ Run

# Flags of `codebank-dev run`, e.g. make run ARGS="--analytics=false --prometheus=false".
ARGS ?=

.PHONY: run
run: ## Run Code Bank locally (Kafka, OpenSearch, Connect, Prometheus, the bank), seeded with demo cards; state in .data/; flags in ARGS
	$(GO) run ./cmd/codebank-dev run $(ARGS)

##@ Develop

# The version and revision the binary reports (codebank --version, codebank_build_info).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILDINFO := github.com/codebank/codebank/internal/buildinfo

.PHONY: build
build: ## Build the codebank binary into bin/, stamped with VERSION and REVISION (from git)
	$(GO) build -ldflags "-X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).revision=$(REVISION)" -o $(BIN) ./cmd/codebank

.PHONY: test
test: proto-check lint breaking ## Run every test: unit, goka tester, integration (real Kafka, Connect, OpenSearch) and browser (real Chromium); screenshots in out/
	CODEBANK_TEST_OUT=$(CURDIR)/out $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

.PHONY: unit
unit: ## Run the hermetic tier: every test that needs no server (no JVM, broker, browser), in about a minute (go test -short; internal/testenv/tier)
	$(GO) test -short -count=1 $(PKGS)

# Each fuzz target of `make fuzz` runs this long.
FUZZTIME ?= 30s

.PHONY: fuzz
fuzz: ## Run every fuzz target (every func Fuzz* of the tests) for FUZZTIME each (default 30s); `make test` runs their seed corpora
	@log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for file in $$(grep -rl --include='*_test.go' '^func Fuzz' --exclude-dir=.git .); do \
		for name in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$file | cut -d' ' -f2); do \
			if $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) ./$$(dirname $$file) > $$log 2>&1; then \
				echo "$$name ($$(dirname $$file)): $$(grep -o 'elapsed: [0-9]*s, execs: [0-9]*' $$log | tail -1), $$(grep -o 'total: [0-9]*' $$log | tail -1) in the corpus"; \
			else cat $$log; echo "$$name failed"; exit 1; fi; \
		done; \
	done

.PHONY: lint
lint: ## gofmt, go vet and buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool buf lint

.PHONY: vulncheck
# The Go vulnerability database as of VULNDB_VERSION, built from the golang.org/x/vulndb module
# (so it needs only the module proxy, not vuln.go.dev); a newer version is a newer database.
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
VULNDB_DIR := $(HOME)/.cache/codebank/vulndb-$(VULNDB_VERSION)

vulncheck: ## Report the known vulnerabilities the code reaches, in its modules and in Go itself (govulncheck, database of VULNDB_VERSION)
	@test -f $(VULNDB_DIR)/index/db.json || { \
	  src=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p') && \
	  rm -rf $(VULNDB_DIR).tmp && \
	  $(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns $$src/data/osv -out $(VULNDB_DIR).tmp && \
	  mv $(VULNDB_DIR).tmp $(VULNDB_DIR); }
	$(GO) run golang.org/x/vuln/cmd/govulncheck@v1.9.0 -db file://$(VULNDB_DIR) ./...

.PHONY: bench
bench: ## The whole bank of make run under ghz at 200 to 5,000/s (bench --full), the synchronous path (30 s warm-up, then 7,000 and 10,000 Authorize/s for 60 s each, on a local broker), the recovery of 1M accounts, partitions grown and authorizers failed over with 100k accounts, and the Go benchmarks; SOAK=30m adds a soak of the whole bank at 1,000/s; see BENCHMARKS.md
	$(GO) run ./cmd/codebank-dev bench --full $(if $(SOAK),--soak $(SOAK))
	$(GO) run ./cmd/codebank-dev bench
	GOMEMLIMIT=120MiB $(GO) run ./cmd/codebank-dev bench --recovery 1000000 --gogc 100
	$(GO) run ./cmd/codebank-dev bench --scale 100000
	$(GO) test -count=1 -run '^$$' -bench 'LowLoad|StatementLag|DeclineTiming' -benchtime 1000x ./grpcgateway/
	$(GO) test -count=1 -run '^$$' -bench 'Correlator|Decide|Codec|Keys' -benchmem ./codecs/ ./processors/... ./grpcgateway/ ./internal/card/
	$(GO) test -count=1 -run '^$$' -bench AggregateWindow -benchtime 3x ./web/
	$(GO) test -count=1 -run '^$$' -bench IndexingLag -benchtime 30x ./analytics/

##@ Contract

.PHONY: proto
proto: ## Regenerate the Go code of proto/ and the REST API's OpenAPI document with the buf and plugins pinned in go.mod
	$(GO) tool buf generate
	$(GO) tool buf generate --template buf.gen.openapi.yaml

.PHONY: breaking
breaking: ## Fail if the protos break the released public API: buf breaking against proto/released.binpb (the Kafka records of codebank/events are the bank's own); after a deliberate change: make release-api
	$(GO) tool buf breaking --against proto/released.binpb

.PHONY: release-api
release-api: ## Record the public API (codebank.v1, and the original bank's payment) as released (proto/released.binpb), which make breaking compares with; commit it
	$(GO) tool buf build --path proto/codebank/v1 --path proto/payment -o proto/released.binpb

.PHONY: proto-check
proto-check: proto ## Fail if the committed generated code is stale
	@if [ -n "$$(git status --porcelain -- proto)" ]; then \
		echo "generated code in proto/ is stale: run 'make proto' and commit"; git status --porcelain -- proto; exit 1; fi

##@ Deploy

# The overlay of k8s/overlays that `make k8s` applies: dev or prod.
OVERLAY ?= prod

.PHONY: k8s
k8s: ## Apply k8s/overlays/$(OVERLAY) (default prod) to the current kubectl context (docs/operations.md)
	kubectl apply --server-side -k k8s/overlays/$(OVERLAY)

.PHONY: k8s-generate
k8s-generate: ## Regenerate k8s/'s topics, Kafka users, PrometheusRule and dashboards (go generate ./k8s); make test fails when they are stale
	$(GO) generate ./k8s

.PHONY: clean
clean: ## Remove build output and the local state of `make run`
	rm -rf bin .data

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*##"} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^[a-zA-Z0-9_-]+:.*##/ {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
