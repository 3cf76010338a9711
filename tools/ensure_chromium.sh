#!/bin/bash
# Browser tests drive Debian's Chromium with Playwright (Playwright's own browser download
# does not work offline). Install it when missing and we are allowed to; otherwise say so.
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    exit $?
fi
echo "note: chromium is not installed; the browser tests will be skipped (sudo apt-get install chromium)"
