#!/bin/sh
# Builds the C library in release mode and installs it under PREFIX:
#   PREFIX/lib/librtcast.so, PREFIX/lib/librtcast.a, PREFIX/include/rtcast.h,
#   PREFIX/lib/pkgconfig/rtcast.pc, PREFIX/lib/cmake/rtcast/rtcastConfig{,Version}.cmake
# so that a program builds with
#   cc app.c $(PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs rtcast)
# or with CMake: find_package(rtcast) (CMAKE_PREFIX_PATH=PREFIX), target rtcast::rtcast
# (run it with PREFIX/lib on the library path, e.g. LD_LIBRARY_PATH, unless PREFIX is /usr/local
# and ldconfig knows it).
#
# Usage: ffi/install.sh PREFIX
# Environment: CARGO_TARGET_DIR (where cargo builds; default ./target), RTCAST_LIB_DIR (install
# the libraries found there instead of building; used by the tests).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 PREFIX" >&2
    exit 2
fi
mkdir -p "$1"
PREFIX=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [ -n "${RTCAST_LIB_DIR:-}" ]; then
    LIB_DIR=$RTCAST_LIB_DIR
else
    cargo build --release -p rtcast-ffi --manifest-path "$ROOT/Cargo.toml"
    LIB_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)

install -d "$PREFIX/lib/pkgconfig" "$PREFIX/lib/cmake/rtcast" "$PREFIX/include"
install -m 0755 "$LIB_DIR/librtcast.so" "$PREFIX/lib/librtcast.so"
install -m 0644 "$LIB_DIR/librtcast.a" "$PREFIX/lib/librtcast.a"
install -m 0644 "$ROOT/include/rtcast.h" "$PREFIX/include/rtcast.h"
sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@VERSION@|$VERSION|g" "$ROOT/ffi/rtcast.pc.in" \
    > "$PREFIX/lib/pkgconfig/rtcast.pc"
for f in rtcastConfig rtcastConfigVersion; do
    sed -e "s|@VERSION@|$VERSION|g" "$ROOT/ffi/$f.cmake.in" > "$PREFIX/lib/cmake/rtcast/$f.cmake"
done
echo "installed rtcast $VERSION under $PREFIX"
