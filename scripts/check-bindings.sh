#!/usr/bin/env bash
# The UI's TypeScript types are generated from the Rust types by ts-rs during `cargo test`;
# this fails when the committed ones differ from what the Rust code generates now.
set -euo pipefail
cd "$(dirname "$0")/.."
changes=$(git status --porcelain -- ui/src/ipc/bindings)
if [ -n "$changes" ]; then
  echo "$changes" >&2
  echo "ui/src/ipc/bindings is out of date: run 'cargo test --workspace' (the core and the app export types) and commit the result" >&2
  exit 1
fi
echo "TS bindings match the Rust types"
