#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS seconds each (default 60), one after the other, and
# exits non-zero as soon as one crashes (the input is kept under services/fuzz/artifacts/).
#
#   bash services/fuzz/run.sh                      # every target, 60 s each
#   FUZZ_SECONDS=600 bash services/fuzz/run.sh jwt_claims   # some targets, longer
#
# cargo-fuzz needs nightly compiler flags (sanitizers, libFuzzer instrumentation); the stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1. Each target starts from its checked-in seeds
# (corpus/<target>/, never written to) plus what earlier runs found (work/<target>/, ignored by
# git), so repeated runs go deeper.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$fuzz_dir/../.." && pwd)"
seconds="${FUZZ_SECONDS:-60}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cd "$repo"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list --fuzz-dir "$fuzz_dir")
fi

# One build for all targets, then the runs reuse it.
cargo fuzz build --fuzz-dir "$fuzz_dir"

for target in "${targets[@]}"; do
    echo "==== $target: ${seconds}s ===="
    mkdir -p "$fuzz_dir/work/$target"
    # The first corpus directory is where libFuzzer writes new inputs: the ignored work dir.
    # -max_len covers the seeds and leaves room to grow; -timeout flags a hang as a crash.
    if ! cargo fuzz run --fuzz-dir "$fuzz_dir" "$target" \
        "$fuzz_dir/work/$target" "$fuzz_dir/corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1; then
        echo "$target crashed: see $fuzz_dir/artifacts/$target/" >&2
        exit 1
    fi
done
echo "all ${#targets[@]} targets ran ${seconds}s each without a crash"
