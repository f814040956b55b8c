# fetchctl build, test and benchmark targets.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN     := bin/fetchctl
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
ACTIONLINT  := github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
GORELEASER  := github.com/goreleaser/goreleaser/v2@v2.15.1

.PHONY: man all build test race lint vet-cross actionlint tidy-check release-check release-snapshot image bench bench-go bench-rss demo clean

all: build

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fetchctl
	CGO_ENABLED=0 go build -trimpath -o bin/fetchtarget ./cmd/fetchtarget

# The tests that drive real servers from Debian's packages skip themselves
# when a package is missing (and fail under CI=true); say which, once.
REAL_SERVERS := tinyproxy microsocks tmux nginx

test:
	@missing=""; for p in $(REAL_SERVERS); do \
		command -v $$p >/dev/null 2>&1 || [ -x /usr/sbin/$$p ] || missing="$$missing $$p"; \
	done; \
	[ -z "$$missing" ] || echo "make test: skipping the tests that need$$missing: not installed (apt-get install$$missing)"
	go test -race -cpu=2 -count=1 ./...

race: test

lint: actionlint vet-cross
	go vet ./...
	go run $(STATICCHECK) ./...

# The code and its tests compile and vet for the other systems people build
# and develop on, not only the one running this.
CROSS_GOOS := darwin windows freebsd
vet-cross:
	@for os in $(CROSS_GOOS); do echo "go vet ./... (GOOS=$$os)"; GOOS=$$os go vet ./... || exit 1; done

# The workflows, and the example in configs/ci; shellcheck checks their run
# scripts when it is installed.
actionlint:
	go run $(ACTIONLINT) configs/ci/*.yml .github/workflows/*.yml

# goreleaser is built from source the first time (several minutes).
release-check:
	go run $(GORELEASER) check

# Archives and checksums.txt for every platform in dist/; publishes nothing.
# goreleaser drops the commit ("none") in a clone without a remote: lend it
# this directory as one.
NOREMOTE := $(if $(shell git remote 2>/dev/null),,GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url GIT_CONFIG_VALUE_0=$(CURDIR))
release-snapshot:
	$(NOREMOTE) go run $(GORELEASER) release --snapshot --clean

image:
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t fetchctl:$(VERSION) .

tidy-check:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	go mod tidy -diff

bench-go:
	go test -run '^$$' -bench . -benchmem ./internal/...

bench: build
	./scripts/bench.sh
	./scripts/bench/proxy.sh

# Peak RSS with 1,000 proxies in --proxy-file over 1,000,000 URLs (several
# minutes); fails above 64 MiB. RSS_PROXIES, RSS_URLS... as in the script.
bench-rss: build
	./scripts/rss.sh

# man/fetchctl.1, man/fetchctl-run.1, ...: generated from the commands.
man:
	go run -tags mangen ./cmd/fetchctl gen-man man

demo: build
	./scripts/demo.sh

clean:
	rm -rf bin bench-out man dist
