#!/usr/bin/env bash
# Builds pollerd as a binary that needs no Swift toolchain (the Swift runtime and Foundation
# linked in statically; only the C library, libstdc++ and SQLite come from the system), strips
# it and installs it in PREFIX/bin (default /usr/local):
#   scripts/install.sh [PREFIX]
# With DESTDIR set it installs under it (for packaging). Prints where it put it.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${1:-/usr/local}
BUILD=${BUILD_DIR:-.build}
swift build -c release --static-swift-stdlib --product pollerd --scratch-path "$BUILD" >&2
BIN="$BUILD/release/pollerd"
strip "$BIN" -o "$BUILD/release/pollerd.stripped"
install -d "${DESTDIR:-}$PREFIX/bin"
install -m 0755 "$BUILD/release/pollerd.stripped" "${DESTDIR:-}$PREFIX/bin/pollerd"
echo "${DESTDIR:-}$PREFIX/bin/pollerd"
