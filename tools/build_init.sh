#!/usr/bin/env bash
# Builds executor/depin-init (the first program of every job container, see executor/depin-init.c
# and executor/containers.py, "PID numbers") from its C source: freestanding (-nostdlib, raw system
# calls), so a C compiler is all it needs (Debian's gcc; no libc headers or static libc). Idempotent:
# skipped when the binary was built from the same source with the same compiler.
#   bash tools/build_init.sh [OUTPUT]      # default executor/depin-init; CC=... picks the compiler
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/executor/depin-init.c"
OUT="${1:-$ROOT/executor/depin-init}"
CC="${CC:-cc}"
CFLAGS=(-Os -static -nostdlib -nostdinc -ffreestanding -fno-builtin -fno-stack-protector -fno-pie -no-pie
        -fno-asynchronous-unwind-tables -Wall -Wextra -Werror -s -Wl,--build-id=none)

command -v "$CC" >/dev/null || { echo "build_init: no C compiler ($CC); install Debian's gcc (make setup does)" >&2; exit 1; }
key="$(cat "$SRC" | sha256sum | cut -d' ' -f1) $("$CC" --version | head -n 1) ${CFLAGS[*]}"
stamp="$OUT.stamp"
if [[ -x "$OUT" && -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
  echo "==> depin-init: up to date"
  exit 0
fi
rm -f "$stamp"
tmp="$OUT.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$CC" "${CFLAGS[@]}" -o "$tmp" "$SRC"
chmod 0755 "$tmp"
mv -f "$tmp" "$OUT"
printf '%s' "$key" >"$stamp"
echo "==> depin-init: built $OUT ($(stat -c %s "$OUT") bytes)"
