#!/usr/bin/env bash
# Run the agent's and the bridge's unit tests (those marked py39) with Debian bullseye's
# python3.9, as on Raspberry Pi OS Bullseye, in a debootstrap chroot. See docs/py39.md.
#
#   scripts/py39-chroot.sh [--arch amd64|arm64] [--repo DIR] [pytest args...]
#   scripts/py39-chroot.sh [--arch ...] --exec CMD [ARGS...]   # any command, in the venv
#   scripts/py39-chroot.sh --list-files                        # the test files it takes
#
# The rootfs is cached in $SIMPUL_CACHE/bullseye-<arch> and rebuilt when ROOTFS_VERSION
# changes; the wheels are downloaded on the host (scripts/py39_wheels.py) and installed
# in the chroot with --no-index. Each run works in its own mount namespace, so parallel
# runs never see each other's mounts and nothing stays mounted after it, even if killed.
# arm64 runs under qemu-user-static (binfmt F flag), about ten times slower.
set -euo pipefail

# What a box has that the agent uses: python3 (3.9.2), venv, ip/tc and ping.
PACKAGES=python3,python3-venv,iproute2,iputils-ping
ROOTFS_VERSION="2 bullseye minbase $PACKAGES"
CACHE=${SIMPUL_CACHE:-/var/cache/simpul}
MIRROR=${SIMPUL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
VENV=/opt/simpul-py39
SELF=$(readlink -f "$0")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
ARCH=amd64
MODE=pytest

die() { echo "py39-chroot: $*" >&2; exit 1; }
say() { echo "py39-chroot: $*" >&2; }

# The test files that carry the py39 marker: only these are collected, so test modules
# that import the fleet side (httpx, fleet_api) are never imported in the chroot.
list_files() {
    (cd "$REPO" && grep -rlE --include='test_*.py' 'pytest\.mark\.py39' tests | sort)
}

while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH=$2; shift 2 ;;
        --repo) REPO=$(cd "$2" && pwd); shift 2 ;;
        --exec) MODE=exec; shift; break ;;
        --list-files) list_files; exit 0 ;;
        --inside) MODE=inside; shift; break ;;
        *) break ;;
    esac
done
case "$ARCH" in amd64|arm64) ;; *) die "--arch is amd64 or arm64, not $ARCH" ;; esac
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mounts)"
ROOT=$CACHE/bullseye-$ARCH

# arm64 binaries run through qemu-user-static; the F flag makes the kernel keep the
# interpreter open, so it works inside the chroot without copying it there.
ensure_binfmt() {
    [ "$ARCH" = arm64 ] || return 0
    local conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && return 0
    [ -r "$conf" ] || die "arm64 needs qemu-user-static ($conf missing)"
    [ -e /proc/sys/fs/binfmt_misc/register ] \
        || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    say "registering qemu-aarch64 with binfmt_misc"
    cat "$conf" > /proc/sys/fs/binfmt_misc/register
}

build_rootfs() {
    [ "$(cat "$ROOT/.simpul-stamp" 2>/dev/null)" = "$ROOTFS_VERSION" ] && return 0
    command -v debootstrap >/dev/null || die "needs debootstrap (apt-get install debootstrap)"
    say "building $ROOT with debootstrap (amd64 ~2.5 min, arm64 ~6 min)"
    local tmp=$ROOT.new
    # Never rm -rf a tree with something mounted in it (a bind of /dev would go too).
    if grep -qE " ($ROOT|$tmp)/" /proc/self/mountinfo; then
        die "something is still mounted under $ROOT: see findmnt; not removing it"
    fi
    rm -rf "$tmp" "$ROOT"
    local start=$SECONDS
    # In its own mount namespace, so the /proc and /sys debootstrap mounts in the target
    # go away with it even if it is killed.
    unshare --mount --propagation private debootstrap --arch="$ARCH" --variant=minbase --include="$PACKAGES" \
        bullseye "$tmp" "$MIRROR" > "$CACHE/debootstrap-$ARCH.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap-$ARCH.log" >&2; die "debootstrap failed"; }
    rm -rf "$tmp"/var/cache/apt/archives/*.deb
    mkdir -p "$tmp/repo" "$tmp/wheels"
    echo "$ROOTFS_VERSION" > "$tmp/.simpul-stamp"
    mv "$tmp" "$ROOT"
    say "rootfs built in $((SECONDS - start)) s"
}

# Inside the private mount namespace: mount, (re)make the venv if the wheels changed,
# then run pytest or the given command. The trap unmounts even on failure or Ctrl-C.
inside() {
    local wheels=$SIMPUL_WHEELS
    mounted=()
    cleanup() {
        local i
        for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
            umount -R "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true
        done
    }
    trap cleanup EXIT
    mount_at() {  # mount_at TARGET MOUNT-ARGS...
        local target=$1; shift
        mount "$@" "$target"; mounted+=("$target")
    }
    mount --make-rprivate /
    mount_at "$ROOT/proc" -t proc proc
    mount_at "$ROOT/dev" --rbind /dev
    mount_at "$ROOT/sys" --rbind /sys
    mount -o remount,bind,ro "$ROOT/sys"
    mount_at "$ROOT/tmp" -t tmpfs -o mode=1777 tmpfs
    mount_at "$ROOT/repo" --bind "$REPO"
    mount -o remount,bind,ro "$ROOT/repo"
    mount_at "$ROOT/wheels" --bind "$wheels"
    mount -o remount,bind,ro "$ROOT/wheels"

    # A clean environment: the host's PIP_* and PYTHON* settings must not leak in.
    local -a env=(env -i PATH="$VENV/bin:/usr/bin:/bin" HOME=/tmp LANG=C.UTF-8
                  PYTHONPATH=/repo PYTHONDONTWRITEBYTECODE=1 CI="${CI:-}")
    local stamp
    stamp=$(basename "$wheels")
    (
        flock 9
        if [ "$(cat "$ROOT$VENV/.simpul-wheels" 2>/dev/null)" != "$stamp" ]; then
            say "installing $(ls "$wheels" | grep -c -v requirements.txt) wheels into $VENV"
            rm -rf "${ROOT:?}$VENV"
            chroot "$ROOT" "${env[@]}" python3 -m venv "$VENV"
            chroot "$ROOT" "${env[@]}" PYTHONDONTWRITEBYTECODE= "$VENV/bin/pip" install -q --disable-pip-version-check \
                --no-index --find-links /wheels -r /wheels/requirements.txt
            echo "$stamp" > "$ROOT$VENV/.simpul-wheels"
        fi
    ) 9> "$CACHE/.venv-$ARCH.lock"

    if [ "$MODE" = exec ]; then
        chroot "$ROOT" "${env[@]}" sh -c 'cd /tmp && exec "$@"' sh "$@"
        return
    fi
    mapfile -t files < <(list_files)
    [ ${#files[@]} -gt 0 ] || die "no test file carries the py39 marker"
    local -a paths=("${files[@]/#//repo/}")
    # Run from /tmp (a tmpfs): pytest's cache and hypothesis' database need a writable
    # place, and the repo is mounted read-only.
    say "$(chroot "$ROOT" "${env[@]}" python -c 'import platform as p
print("Python", p.python_version(), "on Debian", open("/etc/debian_version").read().strip(),
      p.machine())'), $(ls "$wheels" | grep -c -v requirements.txt) packages, ${#files[@]} test files"
    chroot "$ROOT" "${env[@]}" sh -c 'cd /tmp && exec "$@"' sh \
        python -m pytest -c /repo/pyproject.toml --rootdir /repo -p no:cacheprovider \
        -m py39 -q "${paths[@]}" "$@"
}

# The whole run is one function, parsed before it starts: editing this file while a
# run is under way cannot make bash read half a line.
main() {
    if [ "$MODE" = inside ]; then
        MODE=$1; shift
        inside "$@"
        return
    fi
    mkdir -p "$CACHE"
    ensure_binfmt
    (flock 9; build_rootfs) 9> "$CACHE/.rootfs-$ARCH.lock"
    local py=${PYTHON:-} wheels
    if [ -z "$py" ]; then
        if [ -x "$REPO/.venv/bin/python" ]; then py=$REPO/.venv/bin/python; else py=python3; fi
    fi
    wheels=$(flock "$CACHE/.wheels.lock" "$py" "$(dirname "$SELF")/py39_wheels.py" \
        --arch "$ARCH" --cache "$CACHE" --pyproject "$REPO/pyproject.toml") \
        || die "wheel download failed"
    # The rootfs lock is held shared while tests run, so a rebuild never pulls it away.
    export SIMPUL_WHEELS=$wheels
    exec flock -s "$CACHE/.rootfs-$ARCH.lock" \
        unshare --mount --propagation private \
        bash "$SELF" --arch "$ARCH" --repo "$REPO" --inside "$MODE" "$@"
}

main "$@"; exit
