#!/bin/bash
# What the tests need from the system, installed when missing and we are allowed to (root
# with apt-get; CI is): Debian's chromium for the browser tests (Playwright's own browser
# download does not work offline), bubblewrap, the sandbox every submission is graded in, and
# Noto CJK, the font of the Japanese edition's figures (also run by `make course COURSE_LANG=ja`).
# Otherwise say what is missing and how to install it.  Usage: ensure_system_packages.sh [fonts]
need=()
if [ "${1:-}" != "fonts" ]; then
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
    command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
fi
fc-list 2>/dev/null | grep -q "Noto Sans CJK JP" || need+=(fonts-noto-cjk)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]} for the tests..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    exit $?
fi
echo "note: ${need[*]} not installed; what needs them is skipped or shows boxes for Japanese text (sudo apt-get install ${need[*]})"
