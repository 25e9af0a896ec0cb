#!/bin/sh
# Install the real clients tests/it/serve/ drives `usersync serve` with: Debian's `chromium`
# (headless, renders the status page), `chromedriver` (package chromium-driver: the WebDriver
# server the browser test clicks through) and `prometheus` (for `promtool check metrics`).
# Idempotent: runs `apt-get update` and `apt-get install` only when a binary is missing.
# Usage (from anywhere, as root): sh tests/serve/setup.sh
set -eu
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
if [ -z "$missing" ]; then
    echo "chromium, chromedriver and promtool already installed"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
command -v chromium >/dev/null 2>&1 || { echo "chromium did not install" >&2; exit 1; }
command -v chromedriver >/dev/null 2>&1 || { echo "chromedriver did not install (package chromium-driver)" >&2; exit 1; }
command -v promtool >/dev/null 2>&1 || { echo "promtool did not install (package prometheus)" >&2; exit 1; }
echo "installed:$missing"
