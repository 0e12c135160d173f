#!/usr/bin/env bash
# Install and smoke-test spasmwatch as on a Raspberry Pi (64-bit Raspberry Pi OS = Debian
# arm64), without a Pi: an arm64 Debian root from Debian's archive (debootstrap), run by
# qemu-user through binfmt_misc, a venv in it, the README's Pi install, then the commands
# a parent uses: --version, config init/check, simulate + replay, run --serial against a
# sensor on a pty until its alarm (tools/pty_sensor.py), report, and run --simulate
# (the firmware's detector in-process: there is no MicroPython for aarch64).
#
#   sudo tools/pi_smoke.sh [ROOT]      # ROOT: where the arm64 Debian goes
#
# Needs a Debian/Ubuntu host with apt (installs qemu-user-static, binfmt-support and
# debootstrap), root, and access to Debian's archive and PyPI. An existing ROOT is
# reused (the debootstrap step is then skipped); the venv is made afresh every run.
# Environment: PI_SMOKE_SUITE (bookworm; trixie for Python 3.13), PI_SMOKE_MIRROR,
# PI_SMOKE_SECONDS (how long run --serial may take to raise the alarm once connected, 120), PI_SMOKE_REUSE_VENV=1 (keep the venv of
# the last run and only reinstall spasmwatch itself: for re-running the later steps).
# Prints one line per step with its time,
# then a summary; exit status 0 only when every step passed. Slow: see docs/raspberry-pi.md.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${1:-${PI_SMOKE_ROOT:-/var/tmp/spasmwatch-pi-root}}
SUITE=${PI_SMOKE_SUITE:-bookworm}
MIRROR=${PI_SMOKE_MIRROR:-http://deb.debian.org/debian}
SECONDS_RUN=${PI_SMOKE_SECONDS:-120}
SRC=/opt/spasmwatch-src          # inside ROOT
HOME_IN=/home/parent             # a fresh HOME, no config file
LOG=$(mktemp -d /tmp/spasmwatch-pi-smoke.XXXXXX)
SUMMARY=()
FAILED=0
T_START=$(date +%s)

say() { printf '%s\n' "$*"; }

# step NAME CMD...: run, time, record pass/fail; output goes to $LOG/NAME.log
step() {
    local name=$1; shift
    local t0 t1 rc
    t0=$(date +%s)
    "$@" >"$LOG/$name.log" 2>&1
    rc=$?
    t1=$(date +%s)
    if [ $rc -eq 0 ]; then
        SUMMARY+=("$(printf '%-16s %5ss  ok' "$name" $((t1 - t0)))")
    else
        SUMMARY+=("$(printf '%-16s %5ss  FAILED (exit %s)' "$name" $((t1 - t0)) $rc)")
        FAILED=1
    fi
    say "${SUMMARY[-1]}"
    if [ $rc -ne 0 ]; then
        tail -n 25 "$LOG/$name.log" | sed 's/^/    | /'
    fi
    return $rc
}

# in_root CMD: run a shell command in the arm64 root, as a parent's fresh login would.
in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=$HOME_IN LANG=C.UTF-8 TERM=dumb \
        PATH=$SRC/.venv/bin:/usr/local/bin:/usr/bin:/bin PIP_DISABLE_PIP_VERSION_CHECK=1 \
        ${PIP_CERT_IN:+PIP_CERT=$PIP_CERT_IN} /bin/bash -euo pipefail -c "cd $HOME_IN; $1"
}

host_tools() {
    local need=()
    command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
    command -v update-binfmts >/dev/null || need+=(binfmt-support)
    command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    fi
}

binfmt() {
    [ -e /proc/sys/fs/binfmt_misc/status ] ||
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
    grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64
    # F: the interpreter is opened now, so it works inside the chroot too
    grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64
}

bootstrap() {
    if [ -f "$ROOT/.spasmwatch-debootstrap-done" ]; then
        say "reusing $ROOT"
        return 0
    fi
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,ca-certificates,alsa-utils \
        "$SUITE" "$ROOT" "$MIRROR" && touch "$ROOT/.spasmwatch-debootstrap-done"
}

mounts() {
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
    mountpoint -q "$ROOT/dev/pts" || mount --bind /dev/pts "$ROOT/dev/pts"
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
    # pip in the root trusts what the host's pip trusts (a proxy's CA, if any)
    if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
        cp "$PIP_CERT" "$ROOT/etc/ssl/certs/host-ca-bundle.crt"
    fi
}

unmount() {
    for m in dev/pts dev proc; do
        mountpoint -q "$ROOT/$m" && umount "$ROOT/$m"
    done
    return 0
}

# the Debian packages docs/raspberry-pi.md installs (aplay: the alarm sound)
packages() {
    chroot "$ROOT" /bin/sh -c 'command -v aplay >/dev/null || { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq alsa-utils; }'
}

copy_source() {
    mkdir -p "$ROOT$SRC" "$ROOT$HOME_IN"
    if [ "${PI_SMOKE_REUSE_VENV:-0}" = 1 ]; then
        find "$ROOT$SRC" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
    else
        rm -rf "${ROOT:?}$SRC" && mkdir -p "$ROOT$SRC"
    fi
    rm -rf "${ROOT:?}$HOME_IN"/* "$ROOT$HOME_IN"/.[!.]* 2>/dev/null
    # the working tree as git sees it (tracked and new files, not ignored ones like .venv)
    (cd "$REPO" && git ls-files -co --exclude-standard -z |
        tar --null -T - -cf - 2>/dev/null) | tar -C "$ROOT$SRC" -xf -
    test -f "$ROOT$SRC/pyproject.toml"
}

arch() {
    in_root 'uname -m; python3 --version; python3 -c "import platform; print(platform.machine())"' &&
        in_root 'test "$(python3 -c "import platform; print(platform.machine())")" = aarch64'
}

# docs/raspberry-pi.md's install, verbatim apart from the folder
install() {
    if [ "${PI_SMOKE_REUSE_VENV:-0}" = 1 ] && [ -x "$ROOT$SRC/.venv/bin/spasmwatch" ]; then
        in_root "cd $SRC && pip install --no-deps --force-reinstall ."
        return
    fi
    in_root "cd $SRC && python3 -m venv .venv && . .venv/bin/activate && pip install ."
}

version() { in_root 'spasmwatch --version'; }

config() { in_root 'spasmwatch config init && spasmwatch config check'; }

replay() {
    in_root 'spasmwatch simulate spasm-cluster -o traces &&
             spasmwatch replay traces/spasm-cluster.csv --quiet | tee replay.txt &&
             grep -q "ALARM" replay.txt'
}

# The daemon against a sensor on a pty: wait until it is connected (start-up under
# emulation takes a while), then up to PI_SMOKE_SECONDS for the scenario's alarm, then
# Ctrl-C (SIGINT) as a parent would, which must end it cleanly (exit 0 or 130).
run_serial() {
    in_root "python3 $SRC/tools/pty_sensor.py spasm-cluster --speed 10 --seconds 3600 \
                 --wait-for-host --link $HOME_IN/ttySENSOR >sensor.txt 2>sensor.err &
             sensor=\$!
             for _ in \$(seq 600); do [ -e ttySENSOR ] && break; sleep 0.5; done
             spasmwatch run --serial $HOME_IN/ttySENSOR --insecure --db night.db --quiet >run.txt 2>&1 &
             daemon=\$!
             t0=\$(date +%s)
             for _ in \$(seq 1200); do grep -q 'connected over serial' run.txt && break
                                       sleep 0.5; done
             echo \"connected after \$((\$(date +%s) - t0)) s\"
             t1=\$(date +%s)
             for _ in \$(seq \$((2 * $SECONDS_RUN))); do grep -q ALARM run.txt && break
                                                      sleep 0.5; done
             echo \"alarm \$((\$(date +%s) - t1)) s after connecting\"
             kill -INT \$daemon
             set +e; wait \$daemon; code=\$?; set -e
             kill \$sensor 2>/dev/null || true
             cat run.txt
             echo \"run exit status after Ctrl-C: \$code\"
             grep -q 'connected over serial' run.txt && grep -q ALARM run.txt &&
                 { [ \$code = 0 ] || [ \$code = 130 ]; }"
}

report() {
    in_root 'spasmwatch report --db night.db -o report && test -s report/report.html &&
             ls report'
}

simulate_inprocess() {
    in_root 'spasmwatch run --simulate spasm-cluster --speed 0 --quiet | tee sim.txt &&
             grep -q "running the firmware.s detector in this process" sim.txt &&
             grep -q "ALARM" sim.txt && ! grep -qi "pip install" sim.txt'
}

sizes() {
    in_root "du -sm $SRC/.venv | cut -f1 | sed 's/\$/ MB: the venv/' &&
             python3 $SRC/tools/installed_size.py"
}

trap unmount EXIT
say "arm64 smoke test: Debian $SUITE in $ROOT, logs in $LOG"
step host-tools host_tools || exit 1
step binfmt binfmt || exit 1
step debootstrap bootstrap || exit 1
step mounts mounts || exit 1
step packages packages || exit 1
[ -f "$ROOT/etc/ssl/certs/host-ca-bundle.crt" ] && PIP_CERT_IN=/etc/ssl/certs/host-ca-bundle.crt
step copy-source copy_source || exit 1
step arch arch || exit 1
step install install || exit 1
step version version
step config config
step replay replay
step run-serial run_serial
step report report
step run-simulate simulate_inprocess
step sizes sizes
say ""
say "summary (Debian $SUITE arm64 under qemu-user, $(date -u +%Y-%m-%d)):"
for line in "${SUMMARY[@]}"; do say "  $line"; done
say "  total            $(($(date +%s) - T_START))s"
for f in version arch sizes; do sed 's/^/  '"$f"': /' "$LOG/$f.log"; done
grep -h -E 'connected after|alarm .* after connecting|run exit status' "$LOG/run-serial.log" |
    sed 's/^/  run-serial: /'
if [ $FAILED -ne 0 ]; then say "FAILED"; exit 1; fi
say "PASSED"
