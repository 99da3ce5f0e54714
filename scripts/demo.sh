#!/usr/bin/env bash
# The main job on the embedded default: syncs the bundled demo directory
# (examples/demo.ldif, a small school with nested groups) into SQLite
# (examples/demo.db), then lists the users. Safe to run again: the second
# run reports no changes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
./target/release/dirsync --config examples/demo.toml sync
./target/release/dirsync --config examples/demo.toml users list
