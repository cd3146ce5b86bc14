# Porthole developer entry points. `make run` starts the demo; `make test` is what CI runs.
SHELL := /bin/bash
GO ?= go
# staticcheck release that supports the Go version in go.mod (checked with go1.26).
STATICCHECK_VERSION ?= v0.8.2
TEST_TIMEOUT ?= 18m
# What every binary's --version says (internal/version): the nearest tag and
# the commit, stamped in at link time (GOFLAGS may turn off Go's own VCS stamp).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X github.com/porthole-dev/porthole/internal/version.Version=$(VERSION) -X github.com/porthole-dev/porthole/internal/version.Commit=$(COMMIT)

.PHONY: all build deps test vet bench bench-quick run lint clean web

all: build

# The web app's CSS foundation and the tests' accessibility checker come from
# npm at the versions pinned in web/package-lock.json. `npm ci` installs
# exactly those; the foundation's dist file is copied into web/ui/vendor/
# (git-ignored), which the signaling binary embeds. A build without this
# step still compiles and runs, unstyled, and says so when it starts.
WEB_VENDOR := web/ui/vendor/pico.min.css
web: $(WEB_VENDOR)

$(WEB_VENDOR): web/package.json web/package-lock.json
	cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@mkdir -p web/ui/vendor
	cp web/node_modules/@picocss/pico/css/pico.min.css $(WEB_VENDOR)

# Every main package in the module, wherever it lives, into bin/.
build: web
	@mkdir -p bin
	@mains="$$($(GO) list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./...)"; \
	if [ -z "$$mains" ]; then echo "build: no commands yet"; exit 0; fi; \
	echo "go build -o bin/ $$(echo $$mains | wc -w) commands"; \
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ $$mains

# Debian packages the tests use (installs when root; otherwise reports what is missing).
deps:
	@bash .ci/install-deps

vet:
	$(GO) vet ./...

test: deps web lint
	@if [ -d web ] && [ -n "$$(find web -name '*.test.js' -not -path '*/node_modules/*' -print -quit)" ]; then \
		echo "node --test web/"; node --test web/; \
	fi
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# Benchmarks (integration/bench): every figure of PERF.md next to its
# baseline measured in the same run; a table on stdout, JSON and markdown in
# artifacts/bench/. BENCH_ONLY=stack,inproc,turn,signaling,path,browser,fallback limits the
# groups. Compare two runs with: go run ./integration/cmd/porthole-bench -compare old.json new.json
BENCH_ONLY ?=
bench:
	$(GO) test ./integration/bench -run '^TestSuite$$' -count=1 -v -timeout 16m \
		-args -suite=full -only='$(BENCH_ONLY)' -out $(CURDIR)/artifacts/bench/results.json

bench-quick:
	$(GO) test ./integration/bench -run '^TestSuite$$' -count=1 -v -timeout 5m \
		-args -suite=quick -only='$(BENCH_ONLY)' -out $(CURDIR)/artifacts/bench/results-quick.json

run: build
	./bin/porthole-demo

# gofmt, go vet, staticcheck and the browser code's types: part of `make test`, so CI runs them.
lint: web
	@unformatted="$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@# The browser code's JSDoc types, checked by TypeScript (pinned in web/package-lock.json).
	cd web && ./node_modules/.bin/tsc -p jsconfig.json

clean:
	rm -rf bin artifacts web/ui/vendor web/node_modules
	$(GO) clean -testcache
