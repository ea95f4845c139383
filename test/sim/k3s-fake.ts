/**
 * Fake k3s and rke2 binaries for the simulated homelab: one executable script per distribution,
 * version and architecture, so each has a true, distinct sha256 that the release server can
 * publish and the product can verify, push, swap and run exactly as it would the real binary.
 * The distribution is the version's: `v1.31.4+k3s1` is k3s, `v1.31.3+rke2r1` is rke2.
 *
 * The script is run by sh, which answers `--version` itself and hands everything else to node
 * (the node's PATH holds node's own dir); it
 * behaves like k3s / rke2 where the product touches it:
 * - `--version` / `-v`: the two lines the real binary prints. k3s: `k3s version v1.31.4+k3s1
 *   (abcdef12)` / `go version go1.22.5`. rke2 (rancher/rke2 pkg/cli/cmds/root.go; built from the
 *   full `git rev-parse HEAD` with GOEXPERIMENT=boringcrypto, scripts/build-binary):
 *   `rke2 version v1.31.3+rke2r1 (<40 hex>)` / `go version go1.22.4 X:boringcrypto`.
 * - `server` / `agent`: what "the service came up" means here: import the images archives in
 *   `<data-dir>/agent/images/` (journal `state/images.log`), POST `{"version","arch","role",
 *   "images":{"mode","imported","ready"}}` to `$HOMELAB_SIM_CONTROL/nodes/<node>/k3s-started`
 *   (with `$HOMELAB_SIM_JOB_STARTED_MS`, when the service manager took the start, as a header),
 *   record `state/k3s.running`, exit 0 (the simulated API then turns the Node Ready at this
 *   version, unless `images.ready` is false: an air-gapped node without its release's images).
 *   A server first re-extracts its packaged manifests into `<data-dir>/server/manifests`, except
 *   those with a `<file>.skip` beside them, as both distributions do on every start.
 *   `server --cluster-reset [--cluster-reset-restore-path=<file>]` is journalled and exits.
 * - `etcd-snapshot save|ls|list|delete|prune`: on the node's data dir, failing the way k3s fails
 *   on an agent (no server token), with the service down (connection refused) or without etcd
 *   ("etcd datastore disabled": k3s on SQLite, a control-plane-only server).
 * A binary built for another architecture than the node's (`state/arch`) refuses to run with
 * "Exec format error", as the kernel would.
 */
import {createHash} from 'node:crypto'

export type K3sArch = 'amd64' | 'arm64' | 'arm' | 's390x'
export type Distribution = 'k3s' | 'rke2'
/** What a server runs: everything (the default), or only etcd, or only the control plane. */
export type ServerKind = 'all' | 'etcd' | 'control-plane'

export const K3S_ARCHES: readonly K3sArch[] = ['amd64', 'arm64', 'arm', 's390x']
/** rke2 publishes no 32-bit arm build. */
export const RKE2_ARCHES: readonly K3sArch[] = ['amd64', 'arm64', 's390x']
export const ARCHES: Readonly<Record<Distribution, readonly K3sArch[]>> = {k3s: K3S_ARCHES, rke2: RKE2_ARCHES}

/**
 * The simulated images archives (airgap-images.ts makes them): the first line is
 * `homelab-sim-images <distribution> <version> <arch> <file>`, the last line
 * `homelab-sim-images-end <sha256 of everything before that line>`, so a truncated or garbled
 * copy fails to import the way a broken zstd or gzip stream does.
 */
export const IMAGES_ARCHIVE_MAGIC = 'homelab-sim-images'
export const IMAGES_ARCHIVE_END = 'homelab-sim-images-end'
/**
 * What k3s and rke2 import from `<data-dir>/agent/images/` when they start (k3s's
 * pkg/agent/containerd, with wharfie's tarfile.SupportedExtensions); `.txt` files there are
 * lists of images to pre-pull, every other file is not an archive.
 */
export const IMPORTABLE_IMAGE_EXTENSIONS: readonly string[] = ['.tar', '.tar.lz4', '.tar.bz2', '.tbz', '.tar.gz', '.tgz', '.tar.zst', '.tzst']

/** What `uname -m` prints on a node of each architecture. */
export const UNAME_MACHINE: Readonly<Record<K3sArch, string>> = {
  amd64: 'x86_64',
  arm64: 'aarch64',
  arm: 'armv7l',
  s390x: 's390x',
}

export interface FakeBinaryOptions {
  /** `v1.31.4+k3s1` (or `v1.31.3+rke2r1` for rke2); the `-k3s1` spelling is accepted. */
  version: string
  arch: K3sArch
  /** Default: the version's (k3s when it names neither). */
  distribution?: Distribution
}

const VERSION_RE = {
  k3s: /^v(\d+)\.(\d+)\.(\d+)[+-]k3s(\d+)$/,
  rke2: /^v(\d+)\.(\d+)\.(\d+)[+-]rke2r(\d+)$/,
} as const

const EXAMPLE_VERSION: Record<Distribution, string> = {k3s: 'v1.31.4+k3s1', rke2: 'v1.31.3+rke2r1'}

/** The distribution a version string names (`+k3sN` or `+rke2rN`), or undefined. */
export function distributionOf(version: string): Distribution | undefined {
  if (VERSION_RE.k3s.test(version)) return 'k3s'
  if (VERSION_RE.rke2.test(version)) return 'rke2'
  return undefined
}

/** The distribution of a version, or the one asked for, or else k3s. */
function resolveDistribution(version: string, distribution?: Distribution): Distribution {
  return distribution ?? distributionOf(version) ?? 'k3s'
}

/** The `+` spelling of a version, after checking its shape for the distribution (default: its own, else k3s). */
export function canonicalVersion(version: string, distribution?: Distribution): string {
  const d = resolveDistribution(version, distribution)
  if (!VERSION_RE[d].test(version)) {
    throw new Error(`fake ${d} binary: "${version}" is not a ${d} version like ${EXAMPLE_VERSION[d]}`)
  }
  return version.replace(/-(k3s|rke2r)(\d+)$/, '+$1$2')
}

/**
 * The "git commit" a fake release reports, stable per distribution and version: k3s prints 8
 * hex digits, rke2 the whole 40.
 */
export function fakeCommit(version: string, distribution?: Distribution): string {
  const d = resolveDistribution(version, distribution)
  const hex = createHash('sha256').update(`${d} ${canonicalVersion(version, d)}`).digest('hex')
  return hex.slice(0, d === 'rke2' ? 40 : 8)
}

/**
 * Go's runtime.Version() for a plausible toolchain of the Kubernetes minor, as the second line
 * of `--version` prints it; rke2 is built with GOEXPERIMENT=boringcrypto, which Go appends.
 */
export function fakeGoVersion(version: string, distribution?: Distribution): string {
  const d = resolveDistribution(version, distribution)
  const m = VERSION_RE[d].exec(version)
  if (!m) throw new Error(`fake ${d} binary: "${version}" is not a ${d} version`)
  const minor = Number(m[2])
  const patch = Number(m[3])
  const goMinor = minor >= 33 ? 24 : minor === 32 ? 23 : minor >= 30 ? 22 : minor === 29 ? 21 : 20
  return `go1.${goMinor}.${(patch % 9) + 1}${d === 'rke2' ? ' X:boringcrypto' : ''}`
}

/** The first line of `--version` for this release: `k3s version v1.31.4+k3s1 (abcdef12)`. */
export function versionLine(options: FakeBinaryOptions): string {
  const distribution = resolveDistribution(options.version, options.distribution)
  const version = canonicalVersion(options.version, distribution)
  return `${distribution} version ${version} (${fakeCommit(version, distribution)})`
}

/**
 * The manifests a server of this release extracts into `<data-dir>/server/manifests` (paths
 * relative to it), as a real one does on every start: k3s's bundled ones (`metrics-server/` is
 * a directory), rke2's HelmCharts of its packaged components.
 */
export function packagedManifests(version: string, distribution?: Distribution): Record<string, string> {
  const d = resolveDistribution(version, distribution)
  const v = canonicalVersion(version, d)
  const header = `# homelab simulation: packaged with ${d} ${v}. Not the real manifest.\n`
  const helmChart = (name: string, chartVersion: string, bootstrap: boolean) =>
    `${header}apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata:\n  name: ${name}\n  namespace: kube-system\n` +
    `  annotations:\n    helm.cattle.io/chart-url: https://${d === 'rke2' ? 'rke2-charts.rancher.io' : 'k3s.io'}/assets/${name}/${name}-${chartVersion}.tgz\n` +
    `spec:\n  bootstrap: ${bootstrap}\n  chartContent: ${Buffer.from(`${name}-${chartVersion} for ${v}`).toString('base64')}\n`
  const plain = (kind: string, name: string) =>
    `${header}apiVersion: v1\nkind: ${kind}\nmetadata:\n  name: ${name}\n  namespace: kube-system\n  labels:\n    objectset.rio.cattle.io/hash: ${createHash('sha1').update(`${name} ${v}`).digest('hex')}\n`
  if (d === 'rke2') {
    return {
      'rke2-canal.yaml': helmChart('rke2-canal', 'v3.29.0-build2024110400', true),
      'rke2-coredns.yaml': helmChart('rke2-coredns', '1.36.102', true),
      'rke2-ingress-nginx.yaml': helmChart('rke2-ingress-nginx', '4.10.503', false),
      'rke2-metrics-server.yaml': helmChart('rke2-metrics-server', '3.12.004', false),
      'rke2-runtimeclasses.yaml': helmChart('rke2-runtimeclasses', '0.1.000', false),
      'rke2-snapshot-controller.yaml': helmChart('rke2-snapshot-controller', '3.0.601', false),
      'rke2-snapshot-controller-crd.yaml': helmChart('rke2-snapshot-controller-crd', '3.0.601', false),
    }
  }
  return {
    'ccm.yaml': plain('ServiceAccount', 'cloud-controller-manager'),
    'coredns.yaml': plain('ConfigMap', 'coredns'),
    'local-storage.yaml': plain('ConfigMap', 'local-path-config'),
    'metrics-server/aggregated-metrics-reader.yaml': plain('ClusterRole', 'system:aggregated-metrics-reader'),
    'metrics-server/auth-delegator.yaml': plain('ClusterRoleBinding', 'metrics-server:system:auth-delegator'),
    'metrics-server/metrics-server-deployment.yaml': plain('Deployment', 'metrics-server'),
    'metrics-server/metrics-server-service.yaml': plain('Service', 'metrics-server'),
    'rolebindings.yaml': plain('ClusterRoleBinding', 'kube-apiserver-kubelet-admin'),
    'runtimes.yaml': plain('RuntimeClass', 'nvidia'),
    'traefik.yaml': helmChart('traefik', '27.0.201', false),
  }
}

/**
 * A systemd unit as installed with the distribution: k3s's as its install.sh writes it to
 * /etc/systemd/system, rke2's as its tarball ships it (bundle/lib/systemd/system). `bin` is the
 * binary ExecStart runs.
 */
export function systemdUnit(distribution: Distribution, role: 'server' | 'agent', bin: string): string {
  const head = `[Unit]
Description=${UNIT_DESCRIPTION[distribution][role]}
Documentation=${UNIT_DOCS[distribution]}
Wants=network-online.target
After=network-online.target
`
  if (distribution === 'rke2') {
    const unit = `rke2-${role}`
    const other = role === 'server' ? 'rke2-agent' : 'rke2-server'
    return `${head}Conflicts=${other}.service

[Install]
WantedBy=multi-user.target

[Service]
EnvironmentFile=-/etc/default/${unit}
EnvironmentFile=-/etc/sysconfig/${unit}
EnvironmentFile=-/usr/local/lib/systemd/system/${unit}.env
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart=${bin} ${role}
ExecStopPost=-/bin/sh -c "systemd-cgls /system.slice/${unit}.service | grep -Eo '[0-9]+ (containerd|kubelet)' | awk '{print $1}' | xargs -r kill"
`
  }
  const unit = role === 'server' ? 'k3s' : 'k3s-agent'
  return `${head}
[Service]
Type=notify
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-/etc/systemd/system/${unit}.service.env
KillMode=process
Delegate=yes
Restart=always
RestartSec=5s
ExecStart=${bin} ${role}
`
}

export const UNIT_DESCRIPTION: Readonly<Record<Distribution, Record<'server' | 'agent', string>>> = {
  k3s: {server: 'Lightweight Kubernetes', agent: 'Lightweight Kubernetes'},
  rke2: {server: 'Rancher Kubernetes Engine v2 (server)', agent: 'Rancher Kubernetes Engine v2 (agent)'},
}
export const UNIT_DOCS: Readonly<Record<Distribution, string>> = {k3s: 'https://k3s.io', rke2: 'https://github.com/rancher/rke2#readme'}

/** The bytes of a fake k3s (or rke2) binary: an executable node script. */
export function fakeK3sBinary(options: FakeBinaryOptions): Buffer {
  const distribution = resolveDistribution(options.version, options.distribution)
  const version = canonicalVersion(options.version, distribution)
  if (!ARCHES[distribution].includes(options.arch)) throw new Error(`fake ${distribution} binary: no ${distribution} build for architecture "${options.arch}"`)
  const release = {
    distribution,
    version,
    arch: options.arch,
    commit: fakeCommit(version, distribution),
    go: fakeGoVersion(version, distribution),
    usage: distribution === 'rke2' ? 'Rancher Kubernetes Engine 2' : 'Kubernetes, but small and simple',
    // The etcd-snapshot CLI asks the local supervisor: k3s's on 6443, rke2's on 9345.
    supervisor: distribution === 'rke2' ? 'https://127.0.0.1:9345' : 'https://127.0.0.1:6443',
    manifests: packagedManifests(version, distribution),
    images: {magic: IMAGES_ARCHIVE_MAGIC, end: IMAGES_ARCHIVE_END, extensions: IMPORTABLE_IMAGE_EXTENSIONS},
  }
  // `--version` answered by sh, everything else by node: pre-flight asks every node for its
  // version, and starting node for it (tens of ms of CPU) made a 200-node homelab slow on its
  // own side of the wire. The line is sh and JavaScript at once: sh runs `:` and the commands
  // up to `exec`; JavaScript sees a string and a block comment.
  const versionLines = [`${distribution} version ${version} (${release.commit})`, `go version ${release.go}`].map((line) => `'${line}'`).join(' ')
  const fastPath =
    'if [ "$1" = --version ] || [ "$1" = -v ]; then a=; if [ -n "$HOMELAB_SIM_ROOT" ] && [ -f "$HOMELAB_SIM_ROOT/state/arch" ]; then a=$(cat "$HOMELAB_SIM_ROOT/state/arch"); fi; ' +
    `if [ -n "$a" ] && [ "$a" != ${options.arch} ]; then echo "$0: cannot execute binary file: Exec format error" >&2; exit 126; fi; ` +
    `printf '%s\\n' ${versionLines}; exit 0; fi; exec node "$0" "$@"`
  if (fastPath.includes('*/')) throw new Error('fake binary: the sh line must not close the JavaScript comment')
  const header =
    '#!/bin/sh\n' +
    `":" /*; ${fastPath}; */\n` +
    `// homelab simulation: stand-in for ${distribution} ${version} linux/${options.arch}. Not ${distribution}.\n` +
    `const RELEASE = ${JSON.stringify(release)};\n`
  return Buffer.from(header + BINARY_BODY, 'utf8')
}

// The script body. Plain JS that runs as CommonJS or ESM (dynamic imports only, no require,
// no top-level await), because the node directory may sit under a package.json of either type.
// It avoids process.exit so piped output is never cut short on platforms with async pipes.
const BINARY_BODY = String.raw`
(async function main() {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const http = await import('node:http');
  const os = await import('node:os');
  const env = process.env;
  const args = process.argv.slice(2);
  const self = process.argv[1];
  const NAME = RELEASE.distribution;

  class Exit extends Error {
    constructor(code) { super('exit ' + code); this.code = code; }
  }
  function logLine(level, msg) {
    const time = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    process.stderr.write('time="' + time + '" level=' + level + ' msg=' + JSON.stringify(msg) + '\n');
  }
  function fatal(msg) {
    logLine('fatal', msg);
    throw new Exit(1);
  }

  const root = env.HOMELAB_SIM_ROOT || '';
  const stateDir = root ? path.join(root, 'state') : '';
  function readState(name) {
    if (!stateDir) return null;
    try { return fs.readFileSync(path.join(stateDir, name), 'utf8').trim(); } catch { return null; }
  }
  function journalTo(file, fields) {
    if (!stateDir) return;
    const record = [new Date().toISOString(), NAME].concat(fields).join('\x1f') + '\x1e\n';
    try { fs.appendFileSync(path.join(stateDir, file), record); } catch {}
  }
  function journal(fields) { journalTo('service.log', fields); }

  function usage(out) {
    out.write(
      'NAME:\n   ' + NAME + ' - ' + RELEASE.usage + ' (homelab simulation)\n\n' +
      'USAGE:\n   ' + NAME + ' [global options] command [command options] [arguments...]\n\n' +
      'VERSION:\n   ' + RELEASE.version + ' (' + RELEASE.commit + ')\n\n' +
      'COMMANDS:\n   server         Run management server\n   agent          Run node agent\n' +
      '   etcd-snapshot  Manage etcd snapshots (save, ls, delete, prune)\n\n' +
      'GLOBAL OPTIONS:\n   --help, -h     show help\n   --version, -v  print the version\n');
  }

  // Flags the way urfave/cli takes them: --flag value, --flag=value, -f value.
  function parseFlags(list, spec, strict) {
    const flags = {};
    const positional = [];
    for (let i = 0; i < list.length; i++) {
      const a = list[i];
      if (a === '--') { positional.push.apply(positional, list.slice(i + 1)); break; }
      if (!a.startsWith('-') || a === '-') { positional.push(a); continue; }
      const eq = a.indexOf('=');
      const rawName = (eq === -1 ? a : a.slice(0, eq)).replace(/^--?/, '');
      const kind = spec[rawName];
      if (!kind) {
        if (strict) {
          process.stderr.write('Incorrect Usage: flag provided but not defined: -' + rawName + '\n\n');
          usage(process.stderr);
          throw new Exit(1);
        }
        continue;
      }
      const name = kind.name;
      if (kind.type === 'bool') { flags[name] = eq === -1 ? true : a.slice(eq + 1) !== 'false'; continue; }
      if (eq !== -1) { flags[name] = a.slice(eq + 1); continue; }
      if (i + 1 >= list.length) {
        process.stderr.write('Incorrect Usage: flag needs an argument: -' + rawName + '\n');
        throw new Exit(1);
      }
      flags[name] = list[++i];
    }
    return {flags, positional};
  }
  function flagSpec(defs) {
    const spec = {};
    for (const d of defs) for (const alias of d.names) spec[alias] = {name: d.names[0], type: d.type};
    return spec;
  }

  function resolveDataDir(flags) {
    if (flags['data-dir']) return path.resolve(flags['data-dir']);
    if (env.HOMELAB_SIM_DATA_DIR) return env.HOMELAB_SIM_DATA_DIR;
    if (root) return path.join(root, 'data');
    fatal('no data dir: pass --data-dir or run inside the simulated node (HOMELAB_SIM_ROOT)');
  }

  function post(url, body, extraHeaders) {
    return new Promise((resolve, reject) => {
      const payload = Buffer.from(JSON.stringify(body));
      const req = http.request(url, {
        method: 'POST',
        headers: Object.assign({'content-type': 'application/json', 'content-length': payload.length}, extraHeaders || {}),
        signal: AbortSignal.timeout(30000),
      }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode >= 200 && res.statusCode < 300) resolve();
          else reject(new Error('HTTP ' + res.statusCode + ' from ' + url));
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  function rfc3339(date) { return date.toISOString().replace(/\.\d+Z$/, 'Z'); }

  function table(rows) {
    // Like Go's tabwriter with padding 1: every column but the last padded to its widest cell.
    const widths = [];
    for (const row of rows) row.forEach((c, i) => { widths[i] = Math.max(widths[i] || 0, c.length); });
    return rows.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] + 1))).join('')).join('\n') + '\n';
  }

  // Every start writes the packaged manifests again; a <file>.skip beside one leaves it alone.
  function stageManifests(dir) {
    for (const [rel, content] of Object.entries(RELEASE.manifests)) {
      const file = path.join(dir, rel);
      if (fs.existsSync(file + '.skip')) continue;
      fs.mkdirSync(path.dirname(file), {recursive: true});
      fs.writeFileSync(file, content, {mode: 0o600});
    }
  }

  // What a start does with <data-dir>/agent/images/ (k3s's preloadImages, rke2's alike): every
  // archive is imported, a .txt is a list of images to pre-pull, anything else is not looked at.
  // An archive of ours has a header line and an end line (airgap-images.ts); without them it fails
  // as containerd's decompressors do. Journal: state/images.log. In pull mode (state/images-mode
  // not "archive") images come from the network, so the node is ready whatever was imported; in
  // archive mode only when an archive for this very release and arch was imported (rke2: the
  // whole set, or both its core and canal halves).
  async function importImages(dataDir) {
    const crypto = await import('node:crypto');
    const I = RELEASE.images;
    const dir = path.join(dataDir, 'agent', 'images');
    const mode = readState('images-mode') === 'archive' ? 'archive' : 'pull';
    const family = (name) => {
      const ext = I.extensions.find((e) => name.endsWith(e));
      return ext === undefined ? undefined : ({'.tgz': '.tar.gz', '.tzst': '.tar.zst', '.tbz': '.tar.bz2'})[ext] || ext;
    };
    const badMagic = {'.tar': 'archive/tar: invalid tar header', '.tar.gz': 'gzip: invalid header', '.tar.zst': 'magic number mismatch',
      '.tar.lz4': 'lz4: bad magic number', '.tar.bz2': 'bzip2 data invalid: bad magic value'};
    function examine(bytes, kind) {
      const nl = bytes.indexOf(10);
      const m = nl > 0 && nl <= 512 && new RegExp('^' + I.magic + ' (k3s|rke2) (\\S+) (amd64|arm64|arm|s390x) (\\S+)$').exec(bytes.toString('latin1', 0, nl));
      if (!m || family(m[4]) !== kind) return {error: badMagic[kind]};
      const endLength = I.end.length + 67;
      const tail = bytes.length >= nl + 1 + endLength ? bytes.toString('latin1', bytes.length - endLength) : '';
      const body = bytes.subarray(0, bytes.length - endLength);
      if (tail !== '\n' + I.end + ' ' + crypto.createHash('sha256').update(body).digest('hex') + '\n') return {error: 'unexpected EOF'};
      return {header: {distribution: m[1], version: m[2], arch: m[3], file: m[4]}};
    }
    let names = [];
    try { names = fs.readdirSync(dir).sort(); } catch {}
    const imported = [];
    const mine = [];
    for (const name of names) {
      const file = path.join(dir, name);
      let stat = null;
      try { stat = fs.statSync(file); } catch {}
      if (!stat || !stat.isFile()) continue;
      const kind = family(name);
      if (kind === undefined) {
        journalTo('images.log', [name.endsWith('.txt') ? 'pre-pull-list' : 'skipped', name]);
        continue;
      }
      const started = Date.now();
      logLine('info', 'Importing images from ' + file);
      const result = examine(fs.readFileSync(file), kind);
      if (result.error) {
        logLine('error', 'Error encountered while importing ' + file + ': ' + result.error);
        journalTo('images.log', ['import-error', name, result.error]);
        continue;
      }
      const h = result.header;
      logLine('info', 'Imported images from ' + file + ' in ' + (Date.now() - started) + 'ms');
      journalTo('images.log', ['imported', name, h.distribution, h.version, h.arch, h.file]);
      imported.push(name);
      if (h.distribution === NAME && h.version === RELEASE.version && h.arch === RELEASE.arch) mine.push(h.file);
    }
    const has = (re) => mine.some((f) => re.test(f));
    const covered = NAME === 'rke2' ? has(/^rke2-images\.linux-/) || (has(/^rke2-images-core\.linux-/) && has(/^rke2-images-canal\.linux-/)) : mine.length > 0;
    const ready = mode === 'pull' || covered;
    journalTo('images.log', ['result', mode, ready ? 'ready' : 'missing', RELEASE.version, RELEASE.arch]);
    return {mode: mode, imported: imported, ready: ready};
  }

  async function runService(role, rest) {
    const spec = flagSpec([
      {names: ['data-dir', 'd'], type: 'string'},
      {names: ['cluster-reset'], type: 'bool'},
      {names: ['cluster-reset-restore-path'], type: 'string'},
    ]);
    const {flags} = parseFlags(rest, spec, false);
    const dataDir = resolveDataDir(flags);
    if (flags['cluster-reset']) {
      if (role !== 'server') fatal('flag provided but not defined: -cluster-reset');
      const restore = flags['cluster-reset-restore-path'];
      if (restore && !fs.existsSync(restore)) fatal('etcd: snapshot path does not exist: ' + restore);
      journal(['cluster-reset', restore || '']);
      logLine('info', 'Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. ' +
        'Backup and delete ' + path.join(dataDir, 'server', 'db') + ' on each peer etcd server and rejoin the nodes');
      return;
    }
    // fail-start: every start fails; fail-start@<version>: starts of that version only.
    const failure = readState('fail-start') ?? readState('fail-start@' + RELEASE.version);
    if (failure !== null) {
      journal(['start-failed', RELEASE.version, failure || 'simulated start failure']);
      fatal(failure || 'simulated start failure');
    }
    if (role === 'server') stageManifests(path.join(dataDir, 'server', 'manifests'));
    const control = (env.HOMELAB_SIM_CONTROL || '').replace(/\/+$/, '');
    const node = env.HOMELAB_SIM_NODE || '';
    if (!control || !node) fatal('HOMELAB_SIM_CONTROL and HOMELAB_SIM_NODE must be set: run inside a simulated node');
    logLine('info', 'Starting ' + NAME + ' ' + role + ' ' + RELEASE.version + ' (' + RELEASE.commit + ')');
    const images = await importImages(dataDir);
    const url = control + '/nodes/' + encodeURIComponent(node) + '/k3s-started';
    try {
      const job = Number(env.HOMELAB_SIM_JOB_STARTED_MS);
      await post(url, {version: RELEASE.version, arch: RELEASE.arch, role: role, images: images}, job > 0 ? {'x-homelab-sim-job-started-ms': String(job)} : {});
    } catch (err) {
      journal(['start-failed', RELEASE.version, 'control server unreachable']);
      fatal('cannot report to the simulation control server ' + url + ': ' + (err && err.message ? err.message : String(err)));
    }
    if (stateDir) fs.writeFileSync(path.join(stateDir, 'k3s.running'), RELEASE.version + '\n');
    journal(['started', RELEASE.version, RELEASE.arch, role]);
  }

  async function runEtcdSnapshot(rest) {
    const spec = flagSpec([
      {names: ['name'], type: 'string'},
      {names: ['data-dir', 'd'], type: 'string'},
      {names: ['etcd-snapshot-dir', 'dir'], type: 'string'},
      {names: ['node-name'], type: 'string'},
      {names: ['etcd-snapshot-retention', 'snapshot-retention'], type: 'string'},
      {names: ['output', 'o'], type: 'string'},
      {names: ['config', 'c'], type: 'string'},
      {names: ['token', 't'], type: 'string'},
      {names: ['server', 's'], type: 'string'},
      {names: ['etcd-token'], type: 'string'},
      {names: ['etcd-server'], type: 'string'},
      {names: ['log', 'l'], type: 'string'},
      {names: ['debug'], type: 'bool'},
      {names: ['etcd-snapshot-compress', 'snapshot-compress'], type: 'bool'},
      {names: ['etcd-s3', 's3'], type: 'bool'},
    ]);
    const {flags, positional} = parseFlags(rest, spec, true);
    const sub = positional.length > 0 ? positional[0] : 'save';
    const operands = positional.slice(1);
    if (!['save', 'ls', 'list', 'l', 'delete', 'rm', 'prune'].includes(sub)) {
      process.stderr.write('No help topic for \'' + sub + '\'\n');
      throw new Exit(3);
    }
    const dataDir = resolveDataDir(flags);
    // The CLI talks to the local server with the server token: agents have none.
    const tokenFile = path.join(dataDir, 'server', 'token');
    const token = flags.token || flags['etcd-token'];
    if (!token && !fs.existsSync(tokenFile)) fatal('open ' + tokenFile + ': no such file or directory');
    // The token is root's (0600): without sudo the real CLI cannot read it.
    if (!token && stateDir && env.HOMELAB_SIM_PRIVILEGED !== '1') fatal('open ' + tokenFile + ': permission denied');
    if (stateDir && readState('service.state') !== 'active') {
      const supervisor = RELEASE.supervisor.replace(/^https:\/\//, '');
      fatal('Error: see server log for details: Post "' + RELEASE.supervisor + '/db/snapshot": dial tcp ' + supervisor + ': connect: connection refused');
    }
    if (stateDir && readState('etcd') === null) fatal('Error: see server log for details: etcd datastore disabled');
    const dir = flags['etcd-snapshot-dir'] ? path.resolve(flags['etcd-snapshot-dir']) : path.join(dataDir, 'server', 'db', 'snapshots');
    const nodeName = flags['node-name'] || env.HOMELAB_SIM_NODE || os.hostname();

    function listFiles() {
      let names = [];
      try { names = fs.readdirSync(dir); } catch { return []; }
      return names
        .map((n) => ({name: n, file: path.join(dir, n), stat: fs.statSync(path.join(dir, n))}))
        .filter((e) => e.stat.isFile())
        .sort((a, b) => a.stat.mtimeMs - b.stat.mtimeMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    }

    if (sub === 'save') {
      if (operands.length > 0) fatal('this command does not take any arguments');
      const base = flags.name || 'on-demand';
      const ts = Math.floor(Date.now() / 1000);
      const name = base + '-' + nodeName + '-' + ts;
      fs.mkdirSync(dir, {recursive: true, mode: 0o700});
      const content = 'homelab simulation etcd snapshot\nnode: ' + nodeName + '\nversion: ' + RELEASE.version +
        '\ncreated: ' + ts + '\n' + 'x'.repeat(4096) + '\n';
      fs.writeFileSync(path.join(dir, name), content, {mode: 0o600});
      journal(['snapshot-saved', name, path.join(dir, name)]);
      logLine('info', 'Snapshot ' + name + ' saved.');
      return;
    }
    if (sub === 'ls' || sub === 'list' || sub === 'l') {
      const format = flags.output || 'table';
      const files = listFiles();
      if (format === 'json') {
        const items = files.map((e) => ({
          apiVersion: 'k3s.cattle.io/v1', kind: 'ETCDSnapshotFile',
          metadata: {name: 'local-' + e.name.toLowerCase().replace(/[^a-z0-9.-]/g, '-')},
          spec: {snapshotName: e.name, nodeName: nodeName, location: 'file://' + e.file},
          status: {size: String(e.stat.size), creationTime: rfc3339(e.stat.mtime), readyToUse: true},
        }));
        process.stdout.write(JSON.stringify({apiVersion: 'k3s.cattle.io/v1', kind: 'ETCDSnapshotFileList', items: items}, null, 4) + '\n');
        return;
      }
      if (format !== 'table') fatal('invalid output format: ' + format + ' (the simulation renders table and json)');
      const rows = [['Name', 'Location', 'Size', 'Created']].concat(
        files.map((e) => [e.name, 'file://' + e.file, String(e.stat.size), rfc3339(e.stat.mtime)]));
      process.stdout.write(table(rows));
      return;
    }
    if (sub === 'delete' || sub === 'rm') {
      if (operands.length === 0) fatal('no snapshots given for removal');
      for (const name of operands) {
        const file = path.join(dir, name);
        if (!name.includes('/') && fs.existsSync(file)) {
          fs.unlinkSync(file);
          journal(['snapshot-deleted', name]);
          logLine('info', 'Snapshot ' + name + ' deleted.');
        } else {
          logLine('warning', 'Snapshot ' + name + ' not found.');
        }
      }
      return;
    }
    // prune: keep the newest N snapshots of this name prefix.
    const keep = Number(flags['etcd-snapshot-retention'] || '5');
    if (!Number.isInteger(keep) || keep < 1) fatal('snapshot retention must be a positive integer');
    const prefix = (flags.name || 'on-demand') + '-';
    const mine = listFiles().filter((e) => e.name.startsWith(prefix));
    for (const e of mine.slice(0, Math.max(0, mine.length - keep))) {
      fs.unlinkSync(e.file);
      journal(['snapshot-deleted', e.name]);
      logLine('info', 'Snapshot ' + e.name + ' deleted.');
    }
  }

  try {
    const nodeArch = readState('arch');
    if (nodeArch && nodeArch !== RELEASE.arch) {
      process.stderr.write(self + ': cannot execute binary file: Exec format error\n');
      throw new Exit(126);
    }
    const cmd = args[0];
    if (cmd === '--version' || cmd === '-v') {
      process.stdout.write(NAME + ' version ' + RELEASE.version + ' (' + RELEASE.commit + ')\ngo version ' + RELEASE.go + '\n');
    } else if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
      usage(process.stdout);
    } else if (cmd === 'server' || cmd === 'agent') {
      await runService(cmd, args.slice(1));
    } else if (cmd === 'etcd-snapshot') {
      await runEtcdSnapshot(args.slice(1));
    } else {
      if (cmd !== undefined) process.stderr.write('Incorrect Usage: unknown command ' + JSON.stringify(cmd) + '\n\n');
      usage(process.stderr);
      throw new Exit(1);
    }
  } catch (err) {
    if (err instanceof Exit) { process.exitCode = err.code; return; }
    process.stderr.write(NAME + ' (simulation): ' + (err && err.stack ? err.stack : String(err)) + '\n');
    process.exitCode = 1;
  }
})();
`
