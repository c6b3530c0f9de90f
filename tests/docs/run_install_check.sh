#!/bin/sh
# Install into a temporary prefix and build a user's program against it, with pkg-config and with CMake's
# find_package: the headers (tp.h alone), the shared library, the package files. Prints "install ok".
set -eu
build=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/tp-install-XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" > "$work/install.log"
cat > "$work/prog.c" <<'C'
#include <stdio.h>
#include <tensorpool/tp.h>

int main(void)
{
    tp_client_context_t *ctx = NULL;
    if (tp_client_context_init(&ctx) < 0)
    {
        fprintf(stderr, "%s\n", tp_errmsg());
        return 1;
    }
    tp_client_context_close(ctx);
    printf("linked against tensorpool\n");
    return 0;
}
C
pc=$(find "$prefix" -name tensorpool.pc)
pcdir=$(dirname "$pc")
libdir=$(PKG_CONFIG_PATH="$pcdir" pkg-config --variable=libdir tensorpool)
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs tensorpool)
case "$flags" in
*"$prefix"*) ;;
*) echo "pkg-config does not name the install prefix: $flags"; exit 1 ;;
esac
cc -std=c11 -Wall -Werror "$work/prog.c" $flags -Wl,-rpath,"$libdir" -o "$work/prog_pc"
"$work/prog_pc"
mkdir -p "$work/cm"
cat > "$work/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(uses_tensorpool C)
find_package(tensorpool REQUIRED)
add_executable(prog ../prog.c)
target_link_libraries(prog PRIVATE tensorpool::tensorpool_shared)
CM
cmake -S "$work/cm" -B "$work/cm/build" -DCMAKE_PREFIX_PATH="$prefix" > "$work/cm.log"
cmake --build "$work/cm/build" > "$work/cm-build.log"
"$work/cm/build/prog"
echo "install ok"
