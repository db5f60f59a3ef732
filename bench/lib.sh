# Sourced by the benchmark scripts: free ports, and background processes stopped on exit.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n "${work:-}" ]] && rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 "$root/scripts/free_port.py"; }
