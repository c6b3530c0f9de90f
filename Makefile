# tensorpool: the two commands (make run, make test) and the developer targets.
# Each target installs what is missing (apt-get, as root) before building with CMake.

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
DEB_PACKAGES := gcc libc6-dev make cmake ninja-build python3 pkg-config libcmocka-dev iproute2 libpng-dev \
                libjpeg62-turbo-dev libmicrohttpd-dev libsqlite3-dev python3-dev python3-numpy libdlpack-dev \
                libzmq3-dev libiceoryx-binding-c-dev iceoryx
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DTP_WERROR=ON
endif

PREFIX ?= /usr/local

.PHONY: all deps deps-browser build run test test-long install asan tsan fuzz bench clean help

all: build

help:
	@echo "make run    install what is missing, build, run tp demo for a minute with its dashboard on http://127.0.0.1:8080/"
	@echo "make test   install what is missing, build, run every test (ctest)"
	@echo "make test-long  the long versions (label long: 1000 clients around one driver with 60 s of churn, 1000 consumers, ...)"
	@echo "make install    install the library, headers, tp, pkg-config and CMake files under PREFIX (/usr/local)"
	@echo "make asan   the whole test suite under AddressSanitizer + UBSan ($(ASAN_BUILD)/)"
	@echo "make tsan   the concurrency tests under ThreadSanitizer ($(TSAN_BUILD)/)"
	@echo "make fuzz   libFuzzer on every harness, FUZZ_SECONDS each (clang; $(FUZZ_BUILD)/)"
	@echo "make deps-browser  install Chromium (Debian's), for the test that loads tp web in a headless browser"
	@echo "make clean  remove the build folders"

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = "0" ]; then \
			echo "installing:$$missing"; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
		else \
			echo "missing packages:$$missing"; \
			echo "run: sudo apt-get update && sudo apt-get install -y$$missing"; \
			exit 1; \
		fi; \
	fi

# The browser test of tp web runs where Chromium is installed and is skipped (with a message) elsewhere.
deps-browser:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_PACKAGES) chromium"

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/src/cli/tp demo --web 127.0.0.1:8080 --seconds 60

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300 -LE long

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

test-long: build
	cd $(BUILD) && ctest --output-on-failure -L long --timeout 900

asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTP_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS) --timeout 600 -LE long

tsan: deps
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTP_TSAN=ON $(CMAKE_FLAGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 history_size=7 suppressions=$(CURDIR)/tests/tsan.supp" ctest --output-on-failure -j $(JOBS) -L concurrency --timeout 600

fuzz:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_PACKAGES) clang libclang-rt-14-dev"
	CC=clang cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTP_FUZZ=ON -DTP_BUILD_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@for h in sbe slot uri json toml discovery; do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$h; \
		echo "fuzzing $$h for $(FUZZ_SECONDS)s"; \
		$(FUZZ_BUILD)/fuzz/tp_libfuzz_$$h -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			$(FUZZ_BUILD)/corpus/$$h ../shared/vectors/sbe fuzz/corpus/uri fuzz/corpus/discovery ../shared/vectors/toml/valid 2>&1 | grep -E "Done|ERROR|SUMMARY|stat::number_of_executed_units" || exit 1; \
	done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
