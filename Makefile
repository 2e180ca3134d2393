# rrun — see README.md
PREFIX ?= /usr/local
TARGET ?= x86_64-unknown-linux-gnu
RELEASE_BIN := target/$(TARGET)/release/rrun
BUNDLE := bundles/busybox
export RUSTFLAGS ?= -C target-feature=+crt-static

.PHONY: all build bundles demo test test-unit test-integration test-seccomp test-faults test-cgroup2 test-clients test-cri test-systemd lint install bench clean

all: build

build: $(RELEASE_BIN)

$(RELEASE_BIN): Cargo.toml Cargo.lock build.rs $(shell find src -name '*.rs' 2>/dev/null)
	cargo build --release --target $(TARGET)

bundles: $(BUNDLE)/rootfs/bin/busybox

$(BUNDLE)/rootfs/bin/busybox: scripts/mkrootfs.sh
	./scripts/mkrootfs.sh $(BUNDLE)/rootfs

demo: build bundles
	$(RELEASE_BIN) run -b $(BUNDLE) rrun-demo-$$$$

test: test-unit test-integration test-seccomp

# Tests build without the static-pie flags (they would also reach proc-macros without --target).
# The D-Bus client of the systemd driver is tested against a private dbus-daemon.
test-unit:
	@test -x /usr/bin/dbus-daemon || bash -c '. scripts/apt.sh && apt_install dbus-daemon'
	env -u RUSTFLAGS cargo test --bins

# Integration tests need root and real containers. RUNTIME=/usr/sbin/runc runs them against runc.
# The rootless ones make a user and map its subordinate ids with newuidmap (Debian's uidmap).
test-integration: build bundles
	@test -x /usr/bin/newuidmap || bash -c '. scripts/apt.sh && apt_install uidmap'
	RRUN_BIN=$(CURDIR)/$(RELEASE_BIN) env -u RUSTFLAGS cargo test --test integration -- --test-threads=2

# The seccomp compiler against libseccomp (Debian's python3-seccomp, installed if missing) in a
# BPF interpreter: same verdict everywhere but the deviations tests/seccomp/oracle.py lists.
test-seccomp: build
	@/usr/bin/python3 -c 'import seccomp' 2>/dev/null || bash -c '. scripts/apt.sh && apt_install python3-seccomp'
	RRUN_BIN=$(CURDIR)/$(RELEASE_BIN) /usr/bin/python3 tests/seccomp/oracle.py

# Fault injection (tests/faults): rrun SIGKILLed at every syscall of create/start/run/exec/delete,
# in every process it makes, and its own syscalls failed with EIO/ENOMEM/EINTR/EAGAIN (a ptrace
# driver); each followed by delete --force: no hang, no panic, nothing left. FAULTS_EVERY=N samples.
test-faults: build bundles
	RRUN_BIN=$(CURDIR)/$(RELEASE_BIN) env -u RUSTFLAGS cargo test --test faults -- --test-threads=1 --nocapture

# cgroup v2 tests in a qemu guest (Debian's kernel, software emulation); installs what it needs.
test-cgroup2: build
	RRUN_BIN=$(CURDIR)/$(RELEASE_BIN) bash tests/cgroup2/run.sh

# Real engines on rrun: Debian's containerd 1.6 (ctr), podman 4.3, docker 20.10 + docker-compose 1.29,
# installed if missing; private daemons, host changes undone. RUNTIME=/usr/sbin/runc runs the same
# steps against runc; CLIENTS="containerd podman podman-rootless docker" picks engines (rootless: a test user).
test-clients: build
	RRUN_BIN=$(CURDIR)/$(RELEASE_BIN) bash tests/clients/run.sh

# rrun behind containerd's CRI as a Kubernetes node runs it (tests/cri): Debian's containerd 1.6
# with the runtime handlers rrun and runc (runc-v2 shim, BinaryName), CNI bridge + host-local in a
# network namespace of the test, a local pause image, and a CRI v1 client (tests/cri/cri.py, grpcio
# in target/cri-venv) making the kubelet's calls, each checked on the node; then 20 pods at once
# per handler, timed. CRI_HANDLER=runc: the sequence on runc; CRI_SYSTEMD=1: SystemdCgroup = true.
test-cri: build
	RRUN_BIN=$(CURDIR)/$(RELEASE_BIN) bash tests/cri/run.sh

# rrun under systemd: a qemu guest (tcg) booting Debian 12 with systemd as PID 1 on cgroup v2 only
# (image cached in target/systemd-guest/): rrun's systemd-driver tests (tests/systemd/driver.sh),
# then docker, podman and containerd on rrun with the systemd and the cgroupfs cgroup drivers.
# RUNTIME=/usr/sbin/runc runs the same against the guest's runc; SYSTEMD_SECTIONS picks sections.
test-systemd: build
	RRUN_BIN=$(CURDIR)/$(RELEASE_BIN) bash tests/systemd/run.sh

lint:
	cargo fmt --check
	env -u RUSTFLAGS cargo clippy --all-targets -- -D warnings

install: build
	install -D -m 0755 $(RELEASE_BIN) $(DESTDIR)$(PREFIX)/bin/rrun

bench: build bundles
	bash bench/run.sh
	RRUN_BIN=$(CURDIR)/$(RELEASE_BIN) bash bench/systemd.sh

clean:
	cargo clean
	rm -rf $(BUNDLE)/rootfs
