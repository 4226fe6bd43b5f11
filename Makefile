# mpsandbox: the entry point for building, running and testing.
# `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := build

GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# The HTTP surface's semantic version, from its one definition.
API_VERSION := $(shell sed -n 's/^const APIVersion = "\(.*\)"$$/\1/p' server/internal/sandbox/version.go)
BIN      := bin/mpsandbox
IMAGE    ?= mpsandbox:dev
# The image's build context; see Dockerfile.
CONTEXT  := build/image
CA_CERTS ?= /etc/ssl/certs/ca-certificates.crt
# How long each Fuzz target runs in `make fuzz` (`make test` runs their seed
# corpora as ordinary tests).
FUZZTIME ?= 2m
# Extra flags for `make run`, e.g. ARGS='--clock-scale 60'.
ARGS ?=

# gin's own build tag: leaves out the msgpack renderer (and the codec library
# behind it) that the sandbox never uses — 6.5 MB off the binary and the
# image. Exported, so that every go command make runs (build, image, the
# tests, the e2e image build, bench) builds the same program.
export GOFLAGS := -tags=nomsgpack $(GOFLAGS)

# Every package but the black-box suite, which needs docker and runs in `e2e`.
UNIT_PKGS = $(shell $(GO) list ./... | grep -v '/e2e$$')

.PHONY: help build run test unit sdk-test e2e examples image bench soak lint fuzz vuln clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/mpsandbox (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./server/cmd/mpsandbox

run: build ## build and start on 127.0.0.1:8080 with ./data
	./$(BIN) --data-dir ./data $(ARGS)

# The suites run side by side (each one's output together, as it ends):
# the unit tests are CPU-bound, the node, container and examples suites
# mostly wait on the binary and on docker. Every test that runs the binary
# uses bin/mpsandbox, built once here (testproc's MPSANDBOX_TEST_BIN).
test: lint ## vet, then side by side: unit tests with -race, the wx.* shim's node tests, e2e, the examples module
	$(MAKE) --no-print-directory -j4 --output-sync=target unit sdk-test e2e examples

unit: build ## the unit and integration tests with -race, against bin/mpsandbox
	MPSANDBOX_TEST_BIN=$(abspath $(BIN)) $(GO) test -race $(UNIT_PKGS)

sdk-test: build ## the wx.* shim's node tests (sdk/test) against bin/mpsandbox
	command -v node >/dev/null || { echo "sdk-test needs node 18 or later (node --test, fetch)"; exit 1; }
	MPSANDBOX_BIN=$(BIN) node --test sdk/test/

e2e: ## the testcontainers suite (builds its own image, mpsandbox:e2e)
	$(GO) test -count=1 -timeout 10m ./e2e/...

# examples/ is a module of its own that imports the testkit as a merchant's
# does; its container half starts $(IMAGE), built here when docker answers
# (without docker it skips, except under CI).
# Its go.mod lists the main module's requirements too: when those change,
# run `cd examples && go mod tidy` (go test says so otherwise).
examples: ## the examples module: a Pay Score flow with wechatpay-go, in process and in the image
	if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory image; fi
	cd examples && MPSANDBOX_IMAGE=$(IMAGE) $(GO) test -count=1 ./...

image: ## prepare build/image and docker build mpsandbox:dev
	rm -rf $(CONTEXT)
	mkdir -p $(CONTEXT)/data
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(CONTEXT)/mpsandbox ./server/cmd/mpsandbox
	cp Dockerfile $(CONTEXT)/
	cp $(CA_CERTS) $(CONTEXT)/ca-certificates.crt
	cp "$$($(GO) env GOROOT)/lib/time/zoneinfo.zip" $(CONTEXT)/
	docker build --build-arg API_VERSION=$(API_VERSION) --build-arg REVISION=$(VERSION) -t $(IMAGE) $(CONTEXT)

bench: build ## load figures into docs/PERFORMANCE.md: jump, v3, notify, start-up, image, RSS vs a net/http reference
	command -v wrk >/dev/null || apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
	image=""
	if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory image; image=$(IMAGE); fi
	$(GO) build -o bin/refserver ./bench/cmd/refserver
	$(GO) run ./bench/cmd/bench -bin $(BIN) -ref bin/refserver -image "$$image" $(BENCH_ARGS)

soak: build ## the long fault and PostgreSQL replica tests, then 10 min of mixed load; its report goes into docs/PERFORMANCE.md
	MPSANDBOX_SOAK=1 MPSANDBOX_TEST_BIN=$(abspath $(BIN)) $(GO) test -count=1 -timeout 30m -run '^(TestFault|TestPostgres)' -v ./server/cmd/mpsandbox
	$(GO) run ./bench/cmd/soak -bin $(BIN) $(SOAK_ARGS)

vuln: ## govulncheck: known vulnerabilities in the code paths the binary uses (needs vuln.go.dev)
	$(GO) run golang.org/x/vuln/cmd/govulncheck@latest ./...

lint: ## gofmt and go vet
	@unformatted=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go'))
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd examples && $(GO) vet ./...

# Finds the Fuzz targets by grepping the test files first, so only packages
# that have one are compiled for -list; -fuzz takes one target at a time.
fuzz: ## run each Fuzz target for FUZZTIME (2m)
	@for dir in $$(grep -rlE --include='*_test.go' --exclude-dir=e2e --exclude-dir=.git '^func Fuzz[A-Z_0-9]' . | xargs -r -n1 dirname | sort -u); do
		for target in $$($(GO) test -list '^Fuzz' "$$dir" | grep '^Fuzz'); do
			echo "fuzz $$dir $$target ($(FUZZTIME))"
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$dir"
		done
	done

clean: ## remove bin/ and build/ (not ./data)
	rm -rf bin build
