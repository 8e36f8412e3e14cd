#!/usr/bin/env bash
# System packages Simpul needs (lists in .ci/apt/*.txt). As root, install what is
# missing through apt; otherwise say in one line what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
wanted=$(cat .ci/apt/*.txt | sed 's/#.*//' | tr -s ' \n' '\n' | sort -u | grep -v '^$' || true)
missing=()
for pkg in $wanted; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# The dashboard's build (scripts/build-dashboard.sh) needs npm. Debian's npm package
# conflicts with a nodejs that brings its own npm (NodeSource's), so ask for it only
# where neither Node.js nor npm is found.
if ! command -v npm >/dev/null; then
    if command -v node >/dev/null; then
        echo "simpul: $(command -v node) has no npm beside it: install npm with that Node.js" >&2
        exit 1
    fi
    missing+=(npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "simpul: please install: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "simpul: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Another apt run may hold the lock; wait for it rather than fail.
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# prometheus is here for promtool (the alert-rule check); on a host with systemd its
# package enables and starts a server on :9090, which nothing of ours wants.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null \
        && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
