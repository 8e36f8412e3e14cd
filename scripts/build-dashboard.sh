#!/usr/bin/env bash
# Vendor the dashboard's front-end packages from npm into fleet_api/dashboard/static/vendor.
# Part of `make setup`; skipped when the vendored files are newer than package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/../fleet_api/dashboard"
vendor=static/vendor
# uPlot for the charts; Swagger UI for /docs (fleet_api/main.py), served from here too.
files=(uPlot.iife.min.js uPlot.min.css swagger-ui-bundle.js swagger-ui.css)
fresh=1
for f in "${files[@]}"; do
    { [ -f "$vendor/$f" ] && [ "$vendor/$f" -nt package-lock.json ]; } || fresh=0
done
[ "$fresh" -eq 1 ] && exit 0
if ! command -v npm >/dev/null; then
    # scripts/setup-system.sh installs Debian's npm where no Node.js brings one.
    echo "simpul: npm is needed to build the dashboard: run scripts/setup-system.sh as root" >&2
    exit 1
fi
# --ignore-scripts: the packages are plain files; swagger-ui-dist's @scarf/scarf would
# otherwise try to report the install over the network.
npm ci --silent --no-audit --no-fund --ignore-scripts
mkdir -p "$vendor"
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css "$vendor/"
cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
    "$vendor/"
touch "${files[@]/#/$vendor/}"  # newer than package-lock.json: the check above skips next time
