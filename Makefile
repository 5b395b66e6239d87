# Tapeward — see README.md. `make demo` runs the main job; `make test` runs every test.
GO       ?= go
# Tapeward needs Go >= 1.26.10 (crypto/x509, crypto/tls, net/http fixes):
# go.mod's `toolchain go1.26.11` makes the go command fetch it from the
# module proxy where the installed Go is older — even when the environment
# or `go env` says GOTOOLCHAIN=local. A pinned value such as go1.26.11 is
# kept. (tools/lib/harden's TestBuiltWithAFixedToolchain fails otherwise.)
ifneq ($(filter-out local,$(GOTOOLCHAIN)),)
export GOTOOLCHAIN
else
export GOTOOLCHAIN := auto
endif
BIN      ?= bin
# Every binary the repository builds, as package directories.
CMDS     := $(wildcard ./director ./storaged ./tools/filed ./tools/tapectl ./tools/tapekey ./tools/tapextract ./tools/vtl)
TESTFLAGS ?= -count=1 -timeout 30m

.PHONY: all build test bench lint proto demo dr-demo iscsi-demo qemu-check clean quickstart-db quickstart-db-stop

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(CMDS)

# Packages whose code runs goroutines over shared state (drive locks and
# status, the crypto cache, the gRPC links, the director's loops, the job
# runner and scheduler, filed's backup pipeline, the job tape writer, the
# vtl emulator, the iSCSI initiator and target): `make test` runs their
# tests again under the race detector.
RACEPKGS := ./storaged/sd/... ./storaged/cryptocache/... ./storaged/jobtape/... ./proto/link/... ./director/core/... ./director/jobs/... ./tools/filed/fd/... ./tools/vtl/emu/... ./storaged/scsi/iscsi/... ./tools/vtl/iscsi/...

# GOGC=400 while testing: the compiler, the linker, the test binaries and
# the daemons they start spend less CPU collecting garbage (a cold
# `go vet ./...`: 231 → 183 CPU-seconds) for memory this machine has; no
# test checks a process's memory (the benchmarks do, under `make bench`).
TESTGOGC ?= 400
# `go vet ./...` runs every vet analyzer first, so the test runs skip the
# subset go test would run again per package (-vet=off: on a cold build
# cache that repeated vetting cost about 70 CPU-seconds).
# Every test, against a real PostgreSQL (a private cluster started from the
# system binaries, or $$TAPEWARD_TEST_DSN), and RACEPKGS again with -race.
# The end-to-end tests mostly wait on processes, so the race run goes on
# beside the others (its output follows theirs) and up to 4 packages run
# at once: both keep the two cores busy.
test: export GOGC = $(TESTGOGC)
test:
	$(GO) vet ./...
	@mkdir -p $(BIN)
	@$(GO) test -vet=off -race $(TESTFLAGS) $(RACEPKGS) >$(BIN)/race-test.log 2>&1 & race=$$!; \
	echo "$(GO) test -vet=off -race $(TESTFLAGS) $(RACEPKGS) (beside the next; output below it)"; \
	echo "$(GO) test -vet=off -p 4 $(TESTFLAGS) ./..."; \
	$(GO) test -vet=off -p 4 $(TESTFLAGS) ./...; rc=$$?; \
	wait $$race; rrc=$$?; \
	echo "--- go test -race:"; cat $(BIN)/race-test.log; \
	if [ $$rc -ne 0 ] || [ $$rrc -ne 0 ]; then echo "make test: FAILED (tests exit $$rc, race tests exit $$rrc)"; exit 1; fi

# Speed and memory goals are checked here, never by timed tests. The
# backup benchmarks (director/backup_bench_test.go) move 2 GiB and 100,000
# files through real processes: hence the timeout. Smaller runs:
#   make bench BENCHFLAGS='-benchtime 1x' TAPEWARD_BENCH_LARGE_BYTES=64MiB TAPEWARD_BENCH_SMALL_FILES=2000
# On a VM with virtio-balloon free page reporting the data benchmarks log a
# WARNING and the command that turns it off for the run (testenv.HostReclaim).
# On ext4 without a journal, creating files soon after many were deleted
# is slow (testenv.InodeReuse): the small-file restore benchmarks warn;
# give them TMPDIR on a journalled file system, e.g.
#   truncate -s 20G /var/tmp/b.img && mkfs.ext4 -q /var/tmp/b.img && mount -o loop /var/tmp/b.img /mnt/b
#   TMPDIR=/mnt/b make bench
bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m $(BENCHFLAGS) ./...

# The vtl's iSCSI target judged by Linux guests in QEMU, through QEMU's
# iSCSI driver and through open-iscsi (st, sg and ch drivers; mtx, mt,
# stenc, dd, tar): tools/vtl/qemu/check.sh. Needs qemu-system-x86
# qemu-block-extra busybox-static; fetches the guests' Debian kernel and
# tools once. Not part of make test (VMs, ~2 minutes).
qemu-check:
	@./tools/vtl/qemu/check.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Regenerate the gRPC code in proto/tapewardpb (committed, so a build never
# needs protoc). Needs protoc from Debian's protobuf-compiler; the Go plugins
# are installed at pinned versions into $(BIN)/protoc-plugins.
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
PLUGINS            := $(CURDIR)/$(BIN)/protoc-plugins
proto:
	@command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler"; exit 1; }
	GOBIN=$(PLUGINS) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(PLUGINS) $(GO) install $(PROTOC_GEN_GO_GRPC)
	cd proto && protoc -I . -I /usr/include \
	  --plugin=$(PLUGINS)/protoc-gen-go --plugin=$(PLUGINS)/protoc-gen-go-grpc \
	  --go_out=.. --go_opt=module=github.com/tapeward/tapeward \
	  --go-grpc_out=.. --go-grpc_opt=module=github.com/tapeward/tapeward \
	  tapeward/v1/common.proto tapeward/v1/storage.proto tapeward/v1/director.proto tapeward/v1/console.proto tapeward/v1/filed.proto

# The main job on a fresh machine: private PostgreSQL + vtl + storaged +
# director, label 5 encrypted volumes, mount/unmount one, show volumes and
# key events, stop everything. KEEP=1 keeps it running (prints how to connect).
demo:
	@./tools/demo/demo.sh

# The demo, then the disaster-recovery act (issue 13): an escrow key, the
# catalog backup job, then with the catalog dropped and the daemons gone:
# tapextract from tapes + crypto cache + KEK, again with only the escrow
# paper key, and the catalog back from its bootstrap (pg_restore).
dr-demo:
	@DR=1 ./tools/demo/demo.sh

# The demo with the tape library reached over iSCSI (issue 14): the vtl
# also serves as an iSCSI target, and storaged's changer and drives are
# iscsi:// addresses (its userspace initiator: no kernel iSCSI, no /dev/sg).
iscsi-demo:
	@ISCSI=1 ./tools/demo/demo.sh

# The README quickstart's catalog: a private PostgreSQL on 127.0.0.1:5433
# (data in ./state/pg), database and role tapeward, as configs/director.toml
# expects. Needs only Debian's postgresql package; no service is touched.
quickstart-db:
	@./tools/quickstart/pg.sh start

quickstart-db-stop:
	@./tools/quickstart/pg.sh stop

clean:
	rm -rf $(BIN)
