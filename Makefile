# fetchctl build, test and benchmark targets.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN     := bin/fetchctl
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test race lint tidy-check bench bench-go demo clean

all: build

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fetchctl
	CGO_ENABLED=0 go build -trimpath -o bin/fetchtarget ./cmd/fetchtarget

test:
	go test -race -cpu=2 -count=1 ./...

race: test

lint:
	go vet ./...
	go run $(STATICCHECK) ./...

tidy-check:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	go mod tidy -diff

bench-go:
	go test -run '^$$' -bench . -benchmem ./internal/...

bench: build
	./scripts/bench.sh

demo: build
	./scripts/demo.sh

clean:
	rm -rf bin bench-out
