# Qstore — the two commands of the README, and a few helpers.
#   make run    build qstore (release), create the default repository ($QSTORE_PATH or ~/.qstore)
#               when absent, and run `qstore $(ARGS)` on it (default: the daemon)
#   make test   run the whole test suite
#   make fuzz   fuzz every parser for FUZZ_SECONDS each (default 60; TARGETS="car dag-cbor" for some;
#               FUZZ_JOBS=2 for two at a time)
#   make test-asan / make test-tsan   the suite under AddressSanitizer / ThreadSanitizer
#   make soak   MINUTES (default 10) of mixed load at 64 connections against one daemon
# Both install the Debian packages the build needs when they are missing.

DEBIAN_PACKAGES := libleveldb-dev libsnappy-dev libssl-dev libvips-dev libimage-exiftool-perl pkg-config ipfs-cid etcd-server etcd-client iproute2
ARGS ?= daemon
SWIFT ?= swift

.PHONY: deps build run test fuzz test-asan test-tsan soak bench multicodec-table clean

deps:
	@command -v $(SWIFT) >/dev/null 2>&1 || { echo "error: the Swift 6 toolchain (swift) is not on PATH; install it from swift.org first" >&2; exit 1; }
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	$(SWIFT) build

run: deps
	$(SWIFT) build -c release --product qstore
	@repo="$${QSTORE_PATH:-$$HOME/.qstore}"; [ -f "$$repo/version" ] || ./.build/release/qstore init
	./.build/release/qstore $(ARGS)

test: deps
	$(SWIFT) build
	SWIFT=$(SWIFT) Scripts/run-tests.sh

fuzz: deps
	SWIFT=$(SWIFT) FUZZ_SECONDS=$${FUZZ_SECONDS:-60} FUZZ_JOBS=$${FUZZ_JOBS:-1} Scripts/fuzz.sh $(TARGETS)

test-asan: deps
	SWIFT=$(SWIFT) Scripts/sanitize.sh address

test-tsan: deps
	SWIFT=$(SWIFT) Scripts/sanitize.sh thread

soak: deps
	$(SWIFT) build -c release --product qstore
	MINUTES=$${MINUTES:-10} python3 Scripts/soak.py

bench: deps
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark

multicodec-table:
	python3 Scripts/generate-multicodec-table.py

clean:
	rm -rf .build .build-fuzz .build-asan .build-tsan Benchmarks/.build
