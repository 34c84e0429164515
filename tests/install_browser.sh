#!/usr/bin/env bash
# Install headless Chromium for the browser test (tests/test_book.py).
# Does something only when running as root and a browser is missing;
# otherwise it is a no-op (the test then uses whatever chromium is on PATH).
set -euo pipefail

have_browser() {
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

if have_browser && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "install_browser.sh: not root; not installing chromium (browser test may skip outside CI)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: no apt-get; install chromium yourself" >&2
    exit 0
fi
echo "install_browser.sh: installing chromium + chromium-driver with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium chromium-driver
