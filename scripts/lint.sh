#!/usr/bin/env bash
# Checks every C++ file of the repository against .clang-format and .clang-tidy, and every
# shell script with shellcheck (warnings and errors); exits non-zero on any finding. CI runs
# it (.ci/run).
#
#   scripts/lint.sh            format check, shellcheck, then clang-tidy on every .cc (and
#                              Katy's headers)
#   scripts/lint.sh --format   only the format check and shellcheck (seconds)
#   scripts/lint.sh --fix      rewrite the files: clang-format -i, then clang-tidy's fixes
#
# clang-tidy reads build-lint/compile_commands.json: a clang configuration (with the fuzz
# targets, so they are checked too) of which only the generated protobuf code is built.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-all}"
[[ "$mode" == all || "$mode" == --format || "$mode" == --fix ]] || { echo "lint: [--format|--fix]" >&2; exit 2; }
KATY_EXTRA_PACKAGES="clang-14 clang-format clang-tidy shellcheck ${KATY_EXTRA_PACKAGES:-}" scripts/setup.sh

mapfile -t sources < <(git ls-files '*.cc' '*.h')

if [[ "$mode" == --fix ]]; then
  clang-format -i "${sources[@]}"
else
  echo "lint: clang-format on ${#sources[@]} files"
  clang-format --dry-run --Werror "${sources[@]}" || { echo "lint: FAILED (format; scripts/lint.sh --fix rewrites)" >&2; exit 1; }
fi

# The scripts (sourced helpers declare `# shellcheck shell=bash`); -x follows what they source.
mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
echo "lint: shellcheck on ${#scripts[@]} scripts"
if ! shellcheck -x -P SCRIPTDIR -S warning "${scripts[@]}"; then
  echo "lint: FAILED (shellcheck)" >&2
  [[ "$mode" == --fix ]] || exit 1  # it fixes nothing itself: --fix goes on to clang-tidy's fixes
fi
[[ "$mode" == --format ]] && { echo "lint: format and scripts clean"; exit 0; }

dir=build-lint
if [[ ! -f "$dir/build.ninja" ]]; then
  CXX=clang++-14 cmake -S . -B "$dir" -G Ninja -DKATY_FUZZ=ON >/dev/null
fi
cmake --build "$dir" --target katy_proto -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
mapfile -t units < <(git ls-files '*.cc')
echo "lint: clang-tidy on ${#units[@]} files"
fix=()
[[ "$mode" == --fix ]] && fix=(-fix -format)
if ! run-clang-tidy -p "$dir" -quiet -j"$(nproc 2>/dev/null || echo 2)" "${fix[@]}" "${units[@]/#/$PWD/}" \
    >"$dir/tidy.log" 2>&1; then
  grep -E "(warning|error):" "$dir/tidy.log" | sed "s|$PWD/||" | sort -u >&2 || true
  echo "lint: FAILED (clang-tidy; the full output is in $dir/tidy.log)" >&2
  exit 1
fi
echo "lint: clean"
