# Tapeward — see README.md. `make demo` runs the main job; `make test` runs every test.
GO       ?= go
BIN      ?= bin
# Every binary the repository builds, as package directories.
CMDS     := $(wildcard ./director ./storaged ./tools/tapectl ./tools/tapekey ./tools/tapextract ./tools/vtl)
TESTFLAGS ?= -count=1 -timeout 30m

.PHONY: all build test bench lint proto demo clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(CMDS)

# Every test, against a real PostgreSQL (a private cluster started from the
# system binaries, or $$TAPEWARD_TEST_DSN).
test:
	$(GO) vet ./...
	$(GO) test $(TESTFLAGS) ./...

# Speed and memory goals are checked here, never by timed tests.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(BENCHFLAGS) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Regenerate the gRPC code in proto/ (needs protoc from Debian's protobuf-compiler).
proto:
	@echo "proto: the director <-> storaged services arrive with storaged (issue 4)"; exit 1

demo:
	@echo "demo: arrives with the director (issue 5). Until then: make build; see README.md"; exit 1

clean:
	rm -rf $(BIN)
