#!/usr/bin/env bash
# Vendor the dashboard's front-end packages from npm into fleet_api/dashboard/static/vendor.
# Part of `make setup`; skipped when the vendored files are newer than package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/../fleet_api/dashboard"
vendor=static/vendor
if [ -f "$vendor/uPlot.iife.min.js" ] && [ "$vendor/uPlot.iife.min.js" -nt package-lock.json ]; then
    exit 0
fi
if ! command -v npm >/dev/null; then
    # scripts/setup-system.sh installs Debian's npm where no Node.js brings one.
    echo "simpul: npm is needed to build the dashboard: run scripts/setup-system.sh as root" >&2
    exit 1
fi
npm ci --silent --no-audit --no-fund
mkdir -p "$vendor"
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css "$vendor/"
