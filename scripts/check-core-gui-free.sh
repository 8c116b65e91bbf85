#!/usr/bin/env bash
# sloop-core must never depend on the GUI toolkit (DESIGN.md): fail if tauri, wry or webkit
# appear anywhere in its normal dependency tree.
set -euo pipefail
cd "$(dirname "$0")/.."
if cargo tree -p sloop-core -e normal --prefix none | grep -E '^(tauri|wry|webkit2gtk)[ -]'; then
  echo "sloop-core depends on the GUI toolkit (above); move that code to src-tauri/" >&2
  exit 1
fi
echo "sloop-core is free of tauri/wry/webkit"
