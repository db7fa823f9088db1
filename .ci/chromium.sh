#!/usr/bin/env bash
# Headless Chromium (and its driver) for the report and serve tests (Debian 12, as root). Idempotent; fast when installed.
# The tests find it as `chromium` on PATH (or $CASTRIG_CHROMIUM).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
echo "chromium.sh: installing Debian's chromium" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >&2
command -v chromium >/dev/null
command -v chromedriver >/dev/null  # castrig serve's page tests drive it through Selenium
