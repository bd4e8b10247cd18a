#!/usr/bin/env bash
# The README's two commands. Everything they need is set up here, on a fresh machine:
#   bash infra/dev.sh demo   # stack up, replay MovieLens into Kafka, summary read back
#   bash infra/dev.sh test   # stack up, unit + integration tests, lint and types, stack down
# Extra arguments go to the demo (e.g. --limit 20000) or to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/.venv"
python=${NEXTWATCH_PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3

say() { printf '[dev] %s\n' "$*" >&2; }

ensure_system() {
  local missing=()
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # the web page's browser tests
  if ((${#missing[@]})); then
    say "installing ${missing[*]} (apt)"
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq "${missing[@]}" >/dev/null; fi
  fi
}

ensure_venv() {
  # reinstall only when pyproject.toml changed since the last install
  local stamp="$venv/.nextwatch-installed" want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  say "creating $venv and installing nextwatch with its engines' Python packages (first run: a few minutes)"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip wheel
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
  echo "$want" > "$stamp"
}

ensure_system
ensure_venv
# thread-mode PyFlink finds its packages only with the environment active
export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"

case "${1:-}" in
  demo)
    shift
    exec nextwatch demo "$@"
    ;;
  test)
    shift
    nextwatch stack up >/dev/null
    trap 'nextwatch stack down' EXIT
    say "ruff"; ruff check connectors jobs infra tests benchmarks
    say "mypy"; mypy
    say "pytest"; pytest "$@" tests connectors jobs infra
    ;;
  *)
    echo "usage: bash infra/dev.sh demo|test [args]" >&2
    exit 64
    ;;
esac
