#!/usr/bin/env bash
# Builds the browser trainer and serves it: `scripts/serve.sh [port]` (default 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build_web.sh
exec node scripts/serve.mjs "${1:-8080}"
