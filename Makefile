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

.PHONY: all build deps test vet bench bench-quick soak run lint clean web packages

all: build

# The web app's CSS foundation and the tests' accessibility checker come from
# npm at the versions pinned in web/package-lock.json. `npm ci` installs
# exactly those; the foundation's dist file is copied into web/ui/vendor/
# (git-ignored), which the signaling binary embeds. A build without this
# step still compiles and runs, unstyled, and says so when it starts.
WEB_VENDOR := web/ui/vendor/pico.min.css
# The last file the step copies: its presence means the step completed.
WEB_STAMP := web/ui/vendor/xterm/xterm.mjs
web: $(WEB_STAMP)

# npm ci writes node_modules/.package-lock.json last: its age says whether
# node_modules matches the lock file (and a missing node_modules is
# installed again even when the vendored copy is still there).
WEB_MODULES := web/node_modules/.package-lock.json

$(WEB_MODULES): web/package.json web/package-lock.json
	cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

$(WEB_STAMP): $(WEB_MODULES)
	@mkdir -p web/ui/vendor
	cp web/node_modules/@picocss/pico/css/pico.min.css $(WEB_VENDOR)
	@# noVNC (the session window's VNC viewer) as the ES modules it ships:
	@# its core/ and the vendored pako it imports, unchanged.
	rm -rf web/ui/vendor/novnc && mkdir -p web/ui/vendor/novnc
	cp -r web/node_modules/@novnc/novnc/core web/node_modules/@novnc/novnc/vendor web/node_modules/@novnc/novnc/LICENSE.txt web/ui/vendor/novnc/
	@# xterm.js (the session window's terminal): its ES module build and CSS,
	@# and its fit addon (the terminal's size from its real cell size).
	rm -rf web/ui/vendor/xterm && mkdir -p web/ui/vendor/xterm
	cp web/node_modules/@xterm/addon-fit/lib/addon-fit.mjs web/ui/vendor/xterm/
	cp web/node_modules/@xterm/xterm/lib/xterm.mjs web/node_modules/@xterm/xterm/css/xterm.css web/node_modules/@xterm/xterm/LICENSE web/ui/vendor/xterm/

# Every main package in the module, wherever it lives, into bin/.
build: web
	@mkdir -p bin
	@mains="$$($(GO) list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./...)"; \
	if [ -z "$$mains" ]; then echo "build: no commands yet"; exit 0; fi; \
	echo "go build -o bin/ $$(echo $$mains | wc -w) commands"; \
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ $$mains

# .deb and .rpm of porthole-agent, porthole-signaling and porthole-turn in
# $(PKG_DIR)/ (agent/packaging/: nfpm configurations, systemd units, scripts),
# built by nfpm at the version agent/packaging/nfpm pins. Static binaries for
# GOARCH (amd64 or arm64); nfpm expands no variable in a file's source, so
# each configuration is copied into $(PKG_DIR) with its BIN_DIR filled in. The package version is the nearest tag without
# its v, else 0.0.0, with +git.<commit> when HEAD is not that tag.
PKG_DIR ?= dist
GOARCH ?= $(shell $(GO) env GOARCH)
PKG_VERSION ?= $(shell t=$$(git describe --tags --abbrev=0 2>/dev/null); v=$${t#v}; \
	if [ -n "$$t" ] && [ "$$(git rev-parse "$$t^{commit}")" = "$$(git rev-parse HEAD)" ]; then echo "$$v"; \
	else echo "$${v:-0.0.0}+git.$$(git rev-parse --short=10 HEAD 2>/dev/null || echo unknown)"; fi)
packages: web
	@mkdir -p $(PKG_DIR)/bin
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS) -s -w' -o $(PKG_DIR)/bin/ \
		./agent/cmd/porthole-agent ./signaling/cmd/porthole-signaling ./turnserver/cmd/porthole-turn
	GOOS= GOARCH= $(GO) build -C agent/packaging/nfpm -o $(abspath $(PKG_DIR))/nfpm github.com/goreleaser/nfpm/v2/cmd/nfpm
	@for p in agent signaling turn; do \
		sed 's|$${BIN_DIR}|$(PKG_DIR)/bin|' agent/packaging/nfpm-$$p.yaml > $(PKG_DIR)/nfpm-$$p.yaml; \
		for f in deb rpm; do \
			PKG_VERSION='$(PKG_VERSION)' GOARCH=$(GOARCH) \
				$(PKG_DIR)/nfpm package --config $(PKG_DIR)/nfpm-$$p.yaml --packager $$f --target $(PKG_DIR)/ || exit 1; \
		done; \
	done

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
# artifacts/bench/. BENCH_ONLY=stack,inproc,turn,signaling,path,browser,pageload,bulk,fallback limits the
# groups. Compare two runs with: go run ./integration/cmd/porthole-bench -compare old.json new.json
# BENCH_TURN_SESSIONS=200 BENCH_TURN_RUNS=4 runs only that case of the turn group, that often.
BENCH_ONLY ?=
BENCH_TURN_SESSIONS ?=
BENCH_TURN_RUNS ?= 0
bench:
	$(GO) test ./integration/bench -run '^TestSuite$$' -count=1 -v -timeout 40m \
		-args -suite=full -only='$(BENCH_ONLY)' -turn-sessions='$(BENCH_TURN_SESSIONS)' -turn-runs=$(BENCH_TURN_RUNS) \
		-out $(CURDIR)/artifacts/bench/results.json

bench-quick:
	$(GO) test ./integration/bench -run '^TestSuite$$' -count=1 -v -timeout 10m \
		-args -suite=quick -only='$(BENCH_ONLY)' -out $(CURDIR)/artifacts/bench/results-quick.json

# The soak (integration TestSoak): SOAK_SESSIONS sessions held open across
# three signaling nodes for SOAK_TIME, with agents cut, a relay restart and
# sessions expiring; prints the goroutine and memory slopes of every process.
# Then the rolling restart of the three nodes under SOAK_SESSIONS live
# sessions (TestClusterRollingRestart, which `make test` runs with 50).
SOAK_TIME ?= 20m
SOAK_SESSIONS ?= 200
soak: deps web
	PORTHOLE_SOAK=$(SOAK_TIME) PORTHOLE_SOAK_SESSIONS=$(SOAK_SESSIONS) \
		$(GO) test ./integration -run '^TestSoak$$' -count=1 -v -timeout 90m
	PORTHOLE_DRAIN_SESSIONS=$(SOAK_SESSIONS) $(GO) test ./integration -run '^TestClusterRollingRestart$$' -count=1 -v -timeout 15m

run: build
	./bin/porthole-demo

# gofmt, go vet, staticcheck and the browser code's types: part of `make test`, so CI runs them.
lint: web
	@unformatted="$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@# The browser code's JSDoc types, checked by TypeScript (pinned in web/package-lock.json):
	@# the modules of both origins (DOM), the service worker (webworker lib: its own globals)
	@# and the page shim's classic scripts (one strict-mode bundle, web.go's pageBundle).
	cd web && ./node_modules/.bin/tsc -p jsconfig.json && ./node_modules/.bin/tsc -p jsconfig.worker.json && ./node_modules/.bin/tsc -p jsconfig.page.json

clean:
	rm -rf bin artifacts dist web/ui/vendor web/node_modules
	$(GO) clean -testcache
