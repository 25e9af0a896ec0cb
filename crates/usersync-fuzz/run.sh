#!/usr/bin/env bash
# Build and run every usersync fuzz target for a bounded time, one after another, and summarise.
#
#   crates/usersync-fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
#
# Needs a nightly toolchain (`rustup toolchain install nightly`), a C++ compiler (libFuzzer) and
# python3 (seed corpora). cargo-fuzz is installed from crates.io into a throwaway root when it is
# not on PATH. Work files go to $FUZZ_WORK_DIR (default <repo>/target/fuzz): build output, the
# growing corpora (kept between runs), crash artifacts, logs and summary.md. libFuzzer gets a
# dictionary: http.dict (JSON and the providers' paging/error words), config.dict (TOML keys) or
# ldap.dict (BER tags, OIDs, attribute names).
# Exit status: 0 when no target crashed, 1 when at least one did (the artifacts are listed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
secs="${1:-60}"
shift || true
all_targets=(okta entra google keycloak onelogin config ldap)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
work="${FUZZ_WORK_DIR:-$root/target/fuzz}"
mkdir -p "$work"

if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "run.sh: SECONDS_PER_TARGET must be a positive whole number, got '$secs'" >&2
    exit 2
fi
for t in "${targets[@]}"; do
    case " ${all_targets[*]} " in *" $t "*) ;; *) echo "run.sh: unknown target '$t' (known: ${all_targets[*]})" >&2; exit 2 ;; esac
done

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "run.sh: the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 2
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    tools="$work/tools"
    if [ ! -x "$tools/bin/cargo-fuzz" ]; then
        echo "== installing cargo-fuzz into $tools"
        CARGO_TARGET_DIR="$work/tools-build" cargo install cargo-fuzz --locked --root "$tools"
    fi
    export PATH="$tools/bin:$PATH"
fi

echo "== seed corpora from the replay fixtures and docs"
rm -rf "$work/seeds"
python3 "$here/seed.py" "$root" "$work/seeds"

echo "== building ${targets[*]} (nightly, release with debug assertions, no sanitizer)"
cd "$here"
# Safe Rust only: AddressSanitizer would find nothing the panics do not, at several times the cost.
build=(cargo +nightly fuzz build --fuzz-dir "$here" --sanitizer none --target-dir "$work/target")
"${build[@]}" "${targets[@]:0:1}" >/dev/null
for t in "${targets[@]:1}"; do "${build[@]}" "$t" >/dev/null; done

summary="$work/summary.md"
{
    echo "Fuzzing run: $(date -u '+%Y-%m-%d %H:%M UTC'), ${secs} s per target, -jobs=1"
    echo "Machine: $(uname -sm), $(nproc) CPUs, $(rustup run nightly rustc --version)"
    echo
    echo "| target | total execs | execs/s | coverage (edges) | features | corpus | peak RSS MB | crashes |"
    echo "|---|---|---|---|---|---|---|---|"
} >"$summary"
crashed=0
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    artifacts="$work/artifacts/$t/"
    mkdir -p "$corpus" "$artifacts"
    log="$work/logs/$t.log"
    mkdir -p "$(dirname "$log")"
    dict="$here/http.dict"
    [ "$t" = config ] && dict="$here/config.dict"
    [ "$t" = ldap ] && dict="$here/ldap.dict"
    before=$(find "$artifacts" -type f | wc -l)
    echo "== fuzzing $t for ${secs} s (log: $log)"
    set +e
    cargo +nightly fuzz run --fuzz-dir "$here" --sanitizer none --target-dir "$work/target" "$t" \
        "$corpus" "$work/seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=262144 \
        -print_final_stats=1 -dict="$dict" -artifact_prefix="$artifacts" >"$log" 2>&1
    rc=$?
    set -e
    after=$(find "$artifacts" -type f | wc -l)
    new=$((after - before))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || true)
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || true)
    corp=$(echo "$last" | grep -o 'corp: [0-9]*' | grep -o '[0-9]*' || true)
    if [ "$rc" -ne 0 ] || [ "$new" -gt 0 ]; then crashed=1; fi
    echo "| $t | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | ${rss:-?} | $new$([ "$rc" -ne 0 ] && echo " (exit $rc)") |" >>"$summary"
    if [ "$new" -gt 0 ] || [ "$rc" -ne 0 ]; then
        grep -E 'panicked at|thread .* panicked|ERROR: libFuzzer' "$log" | head -5 || true
    fi
done

echo
cat "$summary"
if [ "$crashed" -ne 0 ]; then
    echo
    echo "Crash artifacts (reproduce: cargo +nightly fuzz run --fuzz-dir $here -s none <target> <file>):"
    find "$work/artifacts" -type f | sort
    exit 1
fi
