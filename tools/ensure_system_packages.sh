#!/bin/bash
# What the tests need from the system, installed when missing and we are allowed to (root
# with apt-get; CI is): Debian's chromium for the browser tests (Playwright's own browser
# download does not work offline) and bubblewrap, the sandbox every submission is graded in.
# Otherwise say what is missing and how to install it.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]} for the tests..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    exit $?
fi
echo "note: ${need[*]} not installed; tests that need them are skipped (sudo apt-get install ${need[*]})"
