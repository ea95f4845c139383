#!/usr/bin/env bash
# Runs the CLI, the demo and a smoke subset of the tests on the other supported Node majors
# (22 and 24; the machine's own node, 20, runs everything in `npm test`).
#
# The official binaries come from the npm packages node-linux-<arch>@<major> (bin/node inside),
# installed with --prefix into a cache outside the repo, so the repo's package-lock.json and
# node_modules are untouched. The repo's node_modules (installed by the machine's node) are used
# as they are: native addons built for Node 20 (ssh2's sshcrypto, cpu-features) don't load on
# 22/24 and ssh2 falls back to its pure-JavaScript code, exactly as for a user without a compiler.
#
# Usage: .ci/other-nodes.sh [major...]        (default: 22 24)
# Env:   HOMELAB_NODE_CACHE  cache dir (default: ${TMPDIR:-/tmp}/homelab-node-bin)
set -euo pipefail
cd "$(dirname "$0")/.."

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(22 24)

SMOKE_TESTS=(
  test/versions.test.ts              # version parsing, channels, hops: pure logic
  test/config.test.ts                # homelab.yaml through zod 4
  test/cli/startup-modules.test.ts   # oclif loading only the command it runs (manifest)
  test/ssh.test.ts                   # ssh2 against real sshd processes
  test/suc-apply.test.ts             # @kubernetes/client-node against the simulated API
  test/upgrade/full-upgrade.test.ts  # a whole upgrade saga over SSH + kube API
)

case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "other-nodes: no node-linux package for $(uname -m)" >&2; exit 1 ;;
esac
cache="${HOMELAB_NODE_CACHE:-${TMPDIR:-/tmp}/homelab-node-bin}"
lock_before="$(sha256sum package-lock.json)"

# node_binary MAJOR: prints the path of a cached node MAJOR, installing it first if needed.
node_binary() {
  local major="$1" dir="$cache/$arch-$1" bin
  bin="$dir/node_modules/node-linux-$arch/bin/node"
  if [ ! -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -q "^v$major\."; then
    mkdir -p "$cache"
    local tmp
    tmp="$(mktemp -d "$cache/.install-$major.XXXXXX")"
    echo '{"private": true}' >"$tmp/package.json"
    npm install --prefix "$tmp" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
      "node-linux-$arch@$major" >&2
    rm -rf "$dir"
    mv "$tmp" "$dir"
  fi
  "$bin" --version | grep -q "^v$major\." || { echo "other-nodes: $bin is not node $major" >&2; exit 1; }
  echo "$bin"
}

# The demo and the tests run the built CLI (bin/run.js loads dist/); .ci/run builds it in npm test.
[ -f dist/commands/k8s/upgrade.js ] && [ -f oclif.manifest.json ] || npm run build

logs="$(mktemp -d "${TMPDIR:-/tmp}/homelab-other-nodes.XXXXXX")"
started=$SECONDS
base_path="$PATH"
for major in "${majors[@]}"; do
  t0=$SECONDS
  node="$(node_binary "$major")"
  # Child processes (simulated nodes' fake binaries, `#!/usr/bin/env node` scripts) get this node too.
  export PATH="$(dirname "$node"):$base_path"
  echo "=== Node $("$node" --version) ($node)"

  version="$("$node" bin/run.js --version)"
  echo "$version"
  case "$version" in *"node-v$major."*) ;; *) echo "other-nodes: the CLI did not run on node $major" >&2; exit 1 ;; esac

  echo "--- demo (test/sim/demo.ts) on node $major"
  if ! timeout 300 "$node" --import tsx test/sim/demo.ts >"$logs/demo-$major.log" 2>&1; then
    cat "$logs/demo-$major.log"
    echo "other-nodes: the demo failed on node $major" >&2
    exit 1
  fi
  grep -E '^Upgrade to .* succeeded\.|^  took |^Stopped the homelab' "$logs/demo-$major.log" || true

  echo "--- smoke tests on node $major: ${SMOKE_TESTS[*]}"
  if ! timeout 400 "$node" --import tsx --test --test-concurrency=2 --test-reporter=tap "${SMOKE_TESTS[@]}" \
    >"$logs/smoke-$major.log" 2>&1; then
    cat "$logs/smoke-$major.log"
    echo "other-nodes: smoke tests failed on node $major" >&2
    exit 1
  fi
  # Keep the runner's closing summary ("# tests N", "# pass N", "# fail 0", ...).
  grep -E '^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ' "$logs/smoke-$major.log" || true
  echo "--- node $major: ok in $((SECONDS - t0)) s"
done

[ "$(sha256sum package-lock.json)" = "$lock_before" ] || { echo "other-nodes: package-lock.json changed" >&2; exit 1; }
rm -rf "$logs"
echo "Node ${majors[*]}: CLI, demo and smoke tests passed in $((SECONDS - started)) s"
