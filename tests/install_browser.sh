#!/usr/bin/env bash
# Install headless Chromium for the browser tests (tests/test_book.py,
# tests/test_lab_ui.py), and a CJK font so that Japanese text (the article's
# title) renders as glyphs, not boxes, in the browser and in figures.
# Does something only when running as root and something is missing;
# otherwise it is a no-op (the tests then use whatever chromium is on PATH).
set -euo pipefail

have_browser() {
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}
have_cjk_font() {
    command -v fc-list >/dev/null 2>&1 && fc-list :lang=ja family 2>/dev/null | grep -q .
}

packages=()
if ! (have_browser && command -v chromedriver >/dev/null 2>&1); then
    packages+=(chromium chromium-driver)
fi
if ! have_cjk_font; then
    packages+=(fonts-noto-cjk fontconfig)
fi
if [ "${#packages[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "install_browser.sh: not root; not installing ${packages[*]} (browser tests may skip outside CI)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: no apt-get; install ${packages[*]} yourself" >&2
    exit 0
fi
echo "install_browser.sh: installing ${packages[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"
