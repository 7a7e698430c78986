#!/usr/bin/env bash
# Installs the Debian packages the e2e VM harness needs (npm run test:e2e), listed in
# scripts/vm/host-packages.txt, through the project's one installer.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$here/../host-deps.sh" "$here/host-packages.txt"
