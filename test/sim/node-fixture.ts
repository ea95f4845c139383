/**
 * A simulated node's side of the wire: the directory an SSH session on that node lands in.
 *
 *   <root>/<name>/
 *     bin/k3s      the node's k3s or rke2 (a fake from k3s-fake.ts, mode 0755); the product
 *                  replaces it by writing a sibling file and renaming it over this one
 *     data/        the data dir, laid out like /var/lib/rancher/k3s or /var/lib/rancher/rke2:
 *                  servers have server/token, server/db/etcd (or server/db/state.db for k3s on
 *                  SQLite), server/db/snapshots/ and server/manifests/ (the packaged manifests,
 *                  plus any `<file>.skip` asked for); agents have agent/
 *     fakebin/     first on PATH: systemctl or rc-service (+ openrc, rc-status), sudo, uname,
 *                  and on a node whose binary a package owns, rpm or dpkg + dpkg-query
 *     state/       service state, arch, markers, and the journals service.log, sudo.log and
 *                  commands.log (every call of a fake tool: time, tool, root or not, argv;
 *                  readCommandLog)
 *     env          KEY=VALUE lines every session (and the service) runs with
 *
 * Air-gapped nodes (`images: 'archive'`): `data/agent/images/` holds the images archive of the
 * installed release and arch (k3s-airgap-images-<arch>.tar.zst, rke2-images.linux-<arch>.tar.zst;
 * the very bytes the release server serves, so `archiveBytes` must match its own) and
 * state/images-mode says `archive`. The binary imports that directory on every start
 * (state/images.log, readImagesLog) and tells the simulated API whether it found its own
 * release's images; without them the Node stays NotReady. Default `pull`: images come from the
 * network, no directory, no marker, nothing changes.
 *
 * rke2 nodes (`distribution: 'rke2'`): binary `rke2`, units rke2-server / rke2-agent, systemd
 * only, embedded etcd always, no 32-bit arm. Split roles (`serverKind`): an etcd-only server
 * has etcd and no control plane; a control-plane-only one has no datastore at all, so
 * `etcd-snapshot` there fails "etcd datastore disabled".
 *
 * A package-owned binary (`packageOwned`): `rpm -qf <bin>` names the package (rke2's RPMs put
 * the binary in rke2-common), `dpkg -S <bin>` answers `<package>: <bin>`; for other paths they
 * answer as the real tools do: `file <path> is not owned by any package` (stdout, exit 1) and
 * `dpkg-query: no path found matching pattern <path>` (stderr, exit 1). Without the option, on a
 * host with dpkg, the node's dpkg knows none of the node's files and answers that at once: the
 * host's own `dpkg -S` would give the same answer after reading every package's file list
 * (~50 ms of CPU), which 200 simulated nodes sharing two cores turn into seconds of pre-flight
 * that real nodes, each with its own CPU, do not have.
 *
 * kubeadm nodes have their own layout (kubeadm-node.ts); they share the sudo, uname and
 * service-manager fakes below (the kubelet unit is a ServiceUnit like the k3s one).
 *
 * The fake tools are POSIX sh and need only sh and coreutils (the fake k3s needs node, which
 * the env's PATH provides). They journal every call so tests can prove ordering.
 *
 * Root, as on a real host, is needed to start/stop/restart the service, daemon-reload, and
 * read the server token (`k3s etcd-snapshot`); reading state (is-active, show, status,
 * `k3s --version`) is not. Here "root" is HOMELAB_SIM_PRIVILEGED=1, which the fake `sudo` sets
 * for the command it runs (and `loginAsRoot` sets for every session): never the real uid, as
 * the test runner may itself be root. So a product that forgets `become` fails here too.
 *
 * How the product should tell the service managers apart (works here and on real hosts):
 * OpenRC when `command -v rc-service` succeeds, otherwise systemd when `systemctl --version`
 * succeeds. Checking `/run/systemd/system` cannot work here (it is the host's directory), and
 * `command -v systemctl` alone is wrong on OpenRC nodes: the host may have a real systemctl
 * on PATH, so OpenRC nodes get a `systemctl` that fails like one on a host not booted with
 * systemd (exit 1, "System has not been booted with systemd ..."), never reaching the host's.
 */
import {execFile, spawn} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {chmod, mkdir, readFile, readdir, rename, rm, writeFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {
  canonicalVersion,
  fakeK3sBinary,
  packagedManifests,
  systemdUnit,
  UNAME_MACHINE,
  UNIT_DESCRIPTION,
  UNIT_DOCS,
  type Distribution,
  type K3sArch,
  type ServerKind,
} from './k3s-fake.js'
import type {SimDistribution} from './kubeadm-fake.js'
import {DEFAULT_ARCHIVE_BYTES, imagesArchiveBytes, imagesArchiveName} from './airgap-images.js'

export type NodeRole = 'server' | 'agent'
export type ServiceManager = 'systemd' | 'openrc'
/** `activating`: a Type=simple unit (the kubelet) whose process keeps exiting, restarted by systemd. */
export type ServiceState = 'active' | 'inactive' | 'failed' | 'activating'
export type PackageManager = 'rpm' | 'dpkg'

export interface NodeFixtureOptions {
  /** Parent directory; the node lives in `<root>/<name>` (which must not exist yet). */
  root: string
  name: string
  role: NodeRole
  /** Version of the binary installed in bin/ and of the service "running" now. */
  version: string
  /** Default amd64. */
  arch?: K3sArch
  /** Servers only; default true for servers. */
  embeddedEtcd?: boolean
  /** Base URL of the simulated API's control server (HOMELAB_SIM_CONTROL). */
  controlUrl: string
  /** Default systemd. */
  serviceManager?: ServiceManager
  /** What `uname -m` prints; default from arch (x86_64, aarch64, armv7l, s390x). */
  unameMachine?: string
  /** Default k3s; rke2 names the binary `rke2` and the units rke2-server / rke2-agent. */
  distribution?: Distribution
  /** Whether the service counts as running at start (default true). No control call is made. */
  running?: boolean
  /** Servers only: `all` (default), `etcd` (etcd-only) or `control-plane` (no datastore). */
  serverKind?: ServerKind
  /** Servers only: packaged manifests to leave alone, e.g. `rke2-ingress-nginx.yaml` (writes `<name>.skip`). */
  skipManifests?: readonly string[]
  /** The binary belongs to a package: a fake `rpm` (or `dpkg` and `dpkg-query`) on PATH says so. */
  packageOwned?: PackageManager
  /**
   * Sessions log in as root (become: none). Default false: like a normal user, they must go
   * through `sudo` to change the service or read the server token.
   */
  loginAsRoot?: boolean
  /** How the node gets its system images: `pull` (default, from the network) or `archive` (air-gapped, see above). */
  images?: ImagesMode
  /** Size of the pre-seeded images archive (default 2 MiB, as the release server's default). */
  archiveBytes?: number
}

export type ImagesMode = 'pull' | 'archive'

export interface NodeFixture {
  readonly name: string
  readonly role: NodeRole
  readonly arch: K3sArch
  readonly distribution: SimDistribution
  readonly serviceManager: ServiceManager
  /** `k3s` (servers) or `k3s-agent` (agents); rke2-server / rke2-agent for rke2; `kubelet` for kubeadm. */
  readonly serviceName: string
  readonly dir: string
  readonly binDir: string
  /** `<binDir>/k3s` (or `rke2`; the kubelet on kubeadm nodes). */
  readonly binaryPath: string
  readonly dataDir: string
  /** `<dataDir>/server/manifests` (only servers have one). */
  readonly manifestsDir: string
  /** Servers: what they run; undefined for agents. */
  readonly serverKind: ServerKind | undefined
  /** Which package database owns the binary, if any. */
  readonly packageOwned: PackageManager | undefined
  /** The owning package as its tool prints it (`rke2-common-1.31.3~rke2r1-0.el9.x86_64`, `rke2-common`). */
  readonly ownerPackage: string | undefined
  readonly fakebinDir: string
  readonly stateDir: string
  /** The env file; `env` below is its content. */
  readonly envFile: string
  readonly env: Record<string, string>
}

export interface ServiceLogEntry {
  time: Date
  /** `systemctl`, `rc-service`, `openrc`, `rc-status` (calls), `service` (outcomes), `k3s`/`rke2` (the binary). */
  source: string
  /**
   * For calls: their argv. For `service`: [started|start-failed|stopped|notify-failed, unit, (exit code)].
   * For the binary: [started, version, arch, role] | [start-failed, version, reason] |
   * [snapshot-saved, name, path] | [snapshot-deleted, name] | [cluster-reset, restorePath].
   */
  args: string[]
}

export interface ImagesLogEntry {
  time: Date
  /** `k3s` or `rke2`: the binary that imported. */
  source: string
  /**
   * [imported, file, distribution, version, arch, headerFile] | [import-error, file, error] |
   * [pre-pull-list, file] | [skipped, file] | [result, pull|archive, ready|missing, version, arch]
   * (one per start, last).
   */
  args: string[]
}

export interface CommandLogEntry {
  time: Date
  /** The tool's name: `apt-get`, `kubeadm`, `systemctl`, `sudo`, … */
  tool: string
  /** Run as root (HOMELAB_SIM_PRIVILEGED=1: through the fake sudo, a root login, or by the service manager). */
  privileged: boolean
  argv: string[]
}

export interface SudoLogEntry {
  time: Date
  /** Everything after `sudo`, exactly as received. */
  argv: string[]
  /** The command sudo ran (argv without sudo's own options). */
  command: string[]
}

export interface ExecOnNodeResult {
  stdout: string
  stderr: string
  exitCode: number | null
}

const SERVICE_NAMES: Record<Distribution, Record<NodeRole, string>> = {
  k3s: {server: 'k3s', agent: 'k3s-agent'},
  rke2: {server: 'rke2-server', agent: 'rke2-agent'},
}

/** Quote one word for POSIX sh. */
export function q(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`
}

export async function createNodeFixture(options: NodeFixtureOptions): Promise<NodeFixture> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(options.name)) {
    throw new Error(`node fixture: "${options.name}" is not a usable node name (letters, digits, . _ -)`)
  }
  if (options.role === 'agent' && options.embeddedEtcd) throw new Error(`node fixture ${options.name}: agents have no etcd`)
  if (/[\n\r]/.test(options.controlUrl)) throw new Error('node fixture: control URL must be one line')
  const distribution = options.distribution ?? 'k3s'
  const arch = options.arch ?? 'amd64'
  const serviceManager = options.serviceManager ?? 'systemd'
  const serverKind = options.role === 'server' ? options.serverKind ?? 'all' : undefined
  const problem = fixtureProblem(options, distribution, serverKind)
  if (problem) throw new Error(`node fixture ${options.name}: ${problem}`)
  const owner = options.packageOwned && ownerPackage(distribution, options.version, arch)
  const dir = join(options.root, options.name)
  const binDir = join(dir, 'bin')
  const fixture: NodeFixture = {
    name: options.name,
    role: options.role,
    arch,
    distribution,
    serviceManager,
    serviceName: SERVICE_NAMES[distribution][options.role],
    dir,
    binDir,
    binaryPath: join(binDir, distribution),
    dataDir: join(dir, 'data'),
    manifestsDir: join(dir, 'data', 'server', 'manifests'),
    serverKind,
    packageOwned: options.packageOwned,
    ownerPackage: owner && options.packageOwned && owner[options.packageOwned],
    fakebinDir: join(dir, 'fakebin'),
    stateDir: join(dir, 'state'),
    envFile: join(dir, 'env'),
    env: {},
  }
  Object.assign(fixture.env, {
    PATH: [fixture.fakebinDir, dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':'),
    HOMELAB_SIM_NODE: options.name,
    HOMELAB_SIM_ROLE: options.role,
    HOMELAB_SIM_CONTROL: options.controlUrl,
    HOMELAB_SIM_ROOT: dir,
  })
  if (options.loginAsRoot) fixture.env.HOMELAB_SIM_PRIVILEGED = '1'

  await mkdir(options.root, {recursive: true})
  await mkdir(dir) // fails if it exists: a stale node would lie about its state
  await Promise.all([binDir, fixture.dataDir, fixture.fakebinDir, fixture.stateDir].map((d) => mkdir(d)))
  await writeEnvFile(fixture)
  await installBinary(fixture, {version: options.version})

  if (options.role === 'server') {
    const token = `K10${randomBytes(32).toString('hex')}::server:${randomBytes(16).toString('hex')}`
    await mkdir(join(fixture.dataDir, 'server', 'db'), {recursive: true})
    await writeFile(join(fixture.dataDir, 'server', 'token'), `${token}\n`, {mode: 0o600})
    // A control-plane-only server keeps no datastore: neither etcd nor SQLite.
    if (serverKind !== 'control-plane') await setEmbeddedEtcd(fixture, options.embeddedEtcd ?? true)
    await writeManifests(fixture, options.version, options.skipManifests ?? [])
  } else {
    await mkdir(join(fixture.dataDir, 'agent'), {recursive: true})
  }
  if (options.images === 'archive') {
    await setImagesMode(fixture, 'archive')
    await seedImagesArchive(fixture, {version: options.version, archiveBytes: options.archiveBytes})
  }

  const state = fixture.stateDir
  await writeFile(join(state, 'arch'), `${arch}\n`)
  await writeFile(join(state, 'service.log'), '')
  await writeFile(join(state, 'sudo.log'), '')
  await writeFile(join(state, 'k3s.log'), '')
  const running = options.running ?? true
  await writeFile(join(state, 'service.state'), running ? 'active\n' : 'inactive\n')
  await writeFile(join(state, 'service.since'), `${new Date().toISOString()}\n`)
  if (running) await writeFile(join(state, 'k3s.running'), `${options.version.replace(/-(k3s|rke2r)(\d+)$/, '+$1$2')}\n`)

  const machine = options.unameMachine ?? UNAME_MACHINE[arch]
  const scripts: Record<string, string> = {
    sudo: sudoScript(fixture),
    uname: unameScript(fixture, machine, realUname()),
    '.sim-notify': NOTIFY_SCRIPT,
  }
  if (owner && options.packageOwned === 'rpm') scripts.rpm = rpmScript(fixture, owner)
  if (owner && options.packageOwned === 'dpkg') {
    scripts.dpkg = dpkgScript(fixture, owner, 'dpkg')
    scripts['dpkg-query'] = dpkgScript(fixture, owner, 'dpkg-query')
  } else if (HOST_DPKG) {
    scripts.dpkg = unownedDpkgScript(fixture, 'dpkg')
    scripts['dpkg-query'] = unownedDpkgScript(fixture, 'dpkg-query')
  }
  if (serviceManager === 'systemd') {
    scripts.systemctl = systemctlScript(fixture)
  } else {
    scripts['rc-service'] = rcServiceScript(fixture)
    scripts.openrc = openrcScript(fixture)
    scripts['rc-status'] = rcStatusScript(fixture)
    scripts.systemctl = notSystemdScript(fixture)
  }
  for (const [name, text] of Object.entries(scripts)) {
    await writeFile(join(fixture.fakebinDir, name), text, {mode: 0o755})
  }
  return fixture
}

/** Why these options make no node of this distribution, or undefined. */
function fixtureProblem(options: NodeFixtureOptions, distribution: Distribution, serverKind: ServerKind | undefined): string | undefined {
  if (options.role === 'agent' && options.serverKind !== undefined) return 'serverKind is for servers'
  if (options.role === 'agent' && options.skipManifests?.length) return 'agents have no manifests directory'
  if (serverKind === 'etcd' && options.embeddedEtcd === false) return 'an etcd-only server runs etcd'
  if (serverKind === 'control-plane' && options.embeddedEtcd === true) return 'a control-plane-only server runs no etcd'
  for (const name of options.skipManifests ?? []) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/.test(name)) return `"${name}" is not a manifest path inside server/manifests`
  }
  if (distribution !== 'rke2') return undefined
  if ((options.serviceManager ?? 'systemd') !== 'systemd') return 'rke2 runs under systemd only'
  if (serverKind !== 'control-plane' && options.embeddedEtcd === false) return 'rke2 always runs embedded etcd'
  return undefined
}

/** The packaged manifests as the installed release last extracted them, and the `.skip` files asked for. */
async function writeManifests(fixture: NodeFixture, version: string, skip: readonly string[]): Promise<void> {
  const files: Array<[string, string]> = [
    ...Object.entries(packagedManifests(version, binaryDistribution(fixture))),
    ...skip.map((rel): [string, string] => [`${rel}.skip`, '']),
  ]
  for (const [rel, content] of files) {
    const file = join(fixture.manifestsDir, rel)
    await mkdir(dirname(file), {recursive: true})
    await writeFile(file, content, {mode: 0o600})
  }
}

interface OwnerPackage {
  /** What `rpm -qf` prints (NEVRA) and its parts. */
  rpm: string
  name: string
  version: string
  release: string
  rpmArch: string
  /** What `dpkg -S` prints before the colon, and the deb's version and architecture. */
  dpkg: string
  debVersion: string
  debArch: string
}

/**
 * The package that installed the binary, named as the distribution's packages are: rke2's RPMs
 * put it in rke2-common (`rke2-common-1.31.3~rke2r1-0.el9.x86_64`); k3s has no official
 * package, so its stand-in is `k3s` in the same scheme.
 */
export function ownerPackage(distribution: Distribution, version: string, arch: K3sArch): OwnerPackage {
  const m = /^v(\d+\.\d+\.\d+)\+(k3s|rke2r)(\d+)$/.exec(canonicalVersion(version, distribution))!
  const name = distribution === 'rke2' ? 'rke2-common' : 'k3s'
  const pkgVersion = `${m[1]}~${m[2]}${m[3]}`
  const rpmArch = {amd64: 'x86_64', arm64: 'aarch64', arm: 'armv7hl', s390x: 's390x'}[arch]
  return {
    rpm: `${name}-${pkgVersion}-0.el9.${rpmArch}`,
    name,
    version: pkgVersion,
    release: '0.el9',
    rpmArch,
    dpkg: name,
    debVersion: `${pkgVersion}-0`,
    debArch: arch === 'arm' ? 'armhf' : arch,
  }
}

/** Replaces the node's binary at once (set-up, not the product's swap): temp file + rename. */
export async function installBinary(fixture: NodeFixture, release: {version: string; arch?: K3sArch}): Promise<string> {
  const bytes = fakeK3sBinary({version: release.version, arch: release.arch ?? fixture.arch, distribution: binaryDistribution(fixture)})
  const tmp = `${fixture.binaryPath}.fixture-${process.pid}-${randomBytes(4).toString('hex')}`
  await writeFile(tmp, bytes, {mode: 0o755})
  await chmod(tmp, 0o755)
  await rename(tmp, fixture.binaryPath)
  return createHash('sha256').update(bytes).digest('hex')
}

/** k3s or rke2: the distributions whose nodes run one binary (kubeadm nodes have packages). */
function binaryDistribution(fixture: NodeFixture): Distribution {
  if (fixture.distribution === 'kubeadm') throw new Error(`node fixture ${fixture.name}: a kubeadm node has no ${fixture.binaryPath} to replace; its packages are installed with apt or dnf`)
  return fixture.distribution
}

/** `<dataDir>/agent/images`: where k3s and rke2 import images archives from on every start. */
export function agentImagesDir(fixture: Pick<NodeFixture, 'dataDir'>): string {
  return join(fixture.dataDir, 'agent', 'images')
}

/** Air-gapped (`archive`: state/images-mode) or not (`pull`: no marker). */
export async function setImagesMode(fixture: NodeFixture, mode: ImagesMode): Promise<void> {
  const marker = join(fixture.stateDir, 'images-mode')
  if (mode === 'archive') await writeFile(marker, 'archive\n')
  else await rm(marker, {force: true})
}

/**
 * Puts a release's images archive into the agent images dir as a user pre-seeding the node
 * would (set-up, not the product's push): the release server's bytes for that version, the
 * node's arch unless given, `.tar.zst` unless `file` names another. Returns the path.
 */
export async function seedImagesArchive(
  fixture: NodeFixture,
  release: {version: string; arch?: K3sArch; file?: string; archiveBytes?: number},
): Promise<string> {
  const arch = release.arch ?? fixture.arch
  const file = release.file ?? imagesArchiveName(binaryDistribution(fixture), arch)
  const dir = agentImagesDir(fixture)
  await mkdir(dir, {recursive: true})
  const path = join(dir, file)
  const tmp = `${path}.fixture-${process.pid}-${randomBytes(4).toString('hex')}`
  await writeFile(tmp, imagesArchiveBytes(release.version, arch, file, release.archiveBytes ?? DEFAULT_ARCHIVE_BYTES), {mode: 0o644})
  await rename(tmp, path)
  return path
}

/** What the binary's starts imported from the agent images dir, in order. */
export async function readImagesLog(fixture: Pick<NodeFixture, 'stateDir'>): Promise<ImagesLogEntry[]> {
  return (await readRecords(join(fixture.stateDir, 'images.log'))).map(([time, source, ...args]) => ({time: new Date(time!), source: source!, args}))
}

/** Points the node at another control server (rewrites the env file the sessions and the service read). */
export async function setControlUrl(fixture: NodeFixture, url: string): Promise<void> {
  if (/[\n\r]/.test(url)) throw new Error('node fixture: control URL must be one line')
  fixture.env.HOMELAB_SIM_CONTROL = url
  await writeEnvFile(fixture)
}

/** Embedded etcd (marker state/etcd, data/server/db/etcd, db/snapshots/) or SQLite (data/server/db/state.db). */
export async function setEmbeddedEtcd(fixture: NodeFixture, on: boolean): Promise<void> {
  if (fixture.role !== 'server') throw new Error(`node fixture ${fixture.name}: agents have no datastore`)
  if (!on && fixture.distribution === 'rke2') throw new Error(`node fixture ${fixture.name}: rke2 always runs embedded etcd`)
  const db = join(fixture.dataDir, 'server', 'db')
  if (on) {
    await mkdir(join(db, 'etcd', 'member'), {recursive: true})
    await mkdir(join(db, 'snapshots'), {recursive: true, mode: 0o700})
    await rm(join(db, 'state.db'), {force: true})
    await writeFile(join(fixture.stateDir, 'etcd'), 'embedded\n')
  } else {
    await rm(join(db, 'etcd'), {recursive: true, force: true})
    await writeFile(join(db, 'state.db'), '')
    await rm(join(fixture.stateDir, 'etcd'), {force: true})
  }
}

/** Makes `sudo` want a password: with -n it fails "a password is required", as real sudo does. */
export async function setSudoPasswordRequired(fixture: NodeFixture, required: boolean): Promise<void> {
  const marker = join(fixture.stateDir, 'sudo-password-required')
  if (required) await writeFile(marker, 'yes\n')
  else await rm(marker, {force: true})
}

/**
 * Makes every later `k3s server|agent` start fail with this fatal message (null: starts work
 * again); with `version`, only starts of that version (a release that breaks on this node).
 */
export async function setStartFailure(fixture: NodeFixture, message: string | null, options: {version?: string} = {}): Promise<void> {
  const marker = join(fixture.stateDir, options.version ? `fail-start@${options.version}` : 'fail-start')
  if (message === null) await rm(marker, {force: true})
  else await writeFile(marker, `${message.replace(/\n/g, ' ')}\n`)
}

export async function serviceState(fixture: NodeFixture): Promise<ServiceState> {
  const text = (await readFile(join(fixture.stateDir, 'service.state'), 'utf8').catch(() => 'inactive')).trim()
  return text === 'active' || text === 'failed' || text === 'activating' ? text : 'inactive'
}

/** The version the service last started successfully (null while stopped or failed). */
export async function runningVersion(fixture: NodeFixture): Promise<string | null> {
  const text = await readFile(join(fixture.stateDir, 'k3s.running'), 'utf8').catch(() => null)
  return text === null ? null : text.trim()
}

/** Snapshot file names in the default snapshot dir, oldest first by name. */
export async function listSnapshots(fixture: NodeFixture): Promise<string[]> {
  const names = await readdir(join(fixture.dataDir, 'server', 'db', 'snapshots')).catch(() => [] as string[])
  return names.sort()
}

/** Runs `<bin>/k3s --version` on the node and returns the version it names. */
export async function currentBinaryVersion(fixture: NodeFixture): Promise<string> {
  const result = await execOnNode(fixture, [fixture.binaryPath, '--version'])
  const m = /^(?:k3s|rke2) version (\S+) \(/.exec(result.stdout)
  if (result.exitCode !== 0 || !m) {
    throw new Error(`node ${fixture.name}: ${fixture.binaryPath} --version failed (exit ${result.exitCode}): ${result.stderr.trim() || result.stdout.trim()}`)
  }
  return m[1]!
}

export async function readServiceLog(fixture: NodeFixture): Promise<ServiceLogEntry[]> {
  return (await readRecords(join(fixture.stateDir, 'service.log'))).map(([time, source, ...args]) => ({
    time: new Date(time!),
    source: source!,
    args,
  }))
}

/** Every call of a fake tool on the node, in order (sudo and the command it ran are two entries). */
export async function readCommandLog(fixture: Pick<NodeFixture, 'stateDir'>): Promise<CommandLogEntry[]> {
  return (await readRecords(join(fixture.stateDir, 'commands.log'))).map(([time, tool, privileged, ...argv]) => ({
    time: new Date(time!),
    tool: tool!,
    privileged: privileged === '1',
    argv,
  }))
}

export async function readSudoLog(fixture: NodeFixture): Promise<SudoLogEntry[]> {
  return (await readRecords(join(fixture.stateDir, 'sudo.log'))).map(([time, , count, ...argv]) => ({
    time: new Date(time!),
    argv,
    command: argv.slice(Number(count)),
  }))
}

/**
 * Runs argv on the node the way an SSH session would see it: the node's env (PATH with
 * fakebin first), nothing inherited from the test runner but HOME. Bounded by timeoutMs.
 */
export function execOnNode(
  fixture: NodeFixture,
  argv: readonly string[],
  options: {input?: string | Buffer; timeoutMs?: number; cwd?: string} = {},
): Promise<ExecOnNodeResult> {
  const [command, ...args] = argv
  if (command === undefined) return Promise.reject(new Error('execOnNode: empty argv'))
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? fixture.dir,
      env: {...fixture.env, HOME: process.env.HOME ?? fixture.dir},
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 15_000)
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), exitCode: code})
    })
    child.stdin.on('error', () => {}) // the command may exit without reading its input
    child.stdin.end(options.input ?? '')
  })
}

async function readRecords(file: string): Promise<string[][]> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text
    .split('\x1e\n')
    .filter((r) => r.length > 0)
    .map((r) => r.split('\x1f'))
}

export async function writeEnvFile(fixture: Pick<NodeFixture, 'env' | 'envFile'>): Promise<void> {
  const lines = Object.entries(fixture.env).map(([k, v]) => `${k}=${v}\n`)
  const tmp = `${fixture.envFile}.tmp`
  await writeFile(tmp, lines.join(''))
  await rename(tmp, fixture.envFile)
}

export function realUname(): string {
  for (const candidate of ['/bin/uname', '/usr/bin/uname']) if (existsSync(candidate)) return candidate
  throw new Error('node fixture: no uname on this machine (looked in /bin and /usr/bin)')
}

// ---- the fake tools -------------------------------------------------------------------------

// Shared by every fake: the node's paths and the journal writer. Records are fields split by
// 0x1f and ended by 0x1e plus a newline, so any argument (spaces, quotes, newlines) survives;
// each record is built first and written by one printf, so concurrent writers do not interleave.
// Every fake logs its call to commands.log first (tool, 1 when root, argv).
export function shPrelude(fixture: Pick<NodeFixture, 'name' | 'dir'>, what: string): string {
  return `#!/bin/sh
# homelab simulation: ${what} on node ${fixture.name}. Not the real tool.
NODE_DIR=${q(fixture.dir)}
STATE_DIR="$NODE_DIR/state"
SIM_US=$(printf '\\037')

# ISO time with milliseconds where date knows %N (GNU), whole seconds elsewhere.
sim_now() {
  sim_ts=$(date -u '+%Y-%m-%dT%H:%M:%S.%3NZ' 2>/dev/null)
  case $sim_ts in
    *N*|'') sim_ts=$(date -u '+%Y-%m-%dT%H:%M:%SZ') ;;
  esac
}

sim_log() {
  sim_file=$1
  shift
  sim_now
  sim_rec=$sim_ts
  for sim_field in "$@"; do
    sim_rec=$sim_rec$SIM_US$sim_field
  done
  printf '%s\\036\\n' "$sim_rec" >> "$STATE_DIR/$sim_file"
}
sim_log commands.log "\${0##*/}" "\${HOMELAB_SIM_PRIVILEGED:-0}" "$@"
`
}

/** The one unit a node's service manager knows: k3s / rke2 (binaryService) or the kubelet (kubeadm-node.ts). */
export interface ServiceUnit {
  /** Unit name without `.service`. */
  unit: string
  /** ExecStart: the binary and its arguments. */
  exec: readonly string[]
  description: string
  docs: string
  /** The unit file's path as `systemctl show -p FragmentPath` names it. */
  fragment: string
  /** What `systemctl cat` prints; omitted: the fragment and drop-ins as they are on disk. */
  unitText?: string
  dropIns?: readonly string[]
  /**
   * Type=simple with Restart=always (the kubelet): a start succeeds even when the process dies
   * at once, and the unit then stays `activating` (auto-restart). Default Type=notify (k3s):
   * a process that fails makes the start job fail.
   */
  typeSimple?: boolean
  /** What the service manager reports to the control server when the unit stops (default k3s-stopped). */
  stopEvent?: 'k3s-stopped' | 'kubelet-stopped'
}

/** k3s's or rke2's unit on this node. */
function binaryService(fixture: NodeFixture): ServiceUnit {
  const distribution = binaryDistribution(fixture)
  return {
    unit: fixture.serviceName,
    exec: [fixture.binaryPath, fixture.role],
    description: UNIT_DESCRIPTION[distribution][fixture.role],
    docs: UNIT_DOCS[distribution],
    fragment: unitFragmentPath(fixture),
    unitText: systemdUnit(distribution, fixture.role, fixture.binaryPath),
  }
}

// The unit: what the service manager starts and stops. ExecStart runs with only the node's
// env file as environment (as a unit would, and as root), so nothing leaks in from whoever
// called us. A changed unit file (state/unit-changed, left by a package upgrade) draws
// systemd's daemon-reload warning until daemon-reload.
function shService(fixture: NodeFixture, svc: ServiceUnit): string {
  return `
UNIT=${q(svc.unit)}
DESC=${q(svc.description)}
DOCS=${q(svc.docs)}
FRAGMENT=${q(svc.fragment)}
TYPE_SIMPLE=${svc.typeSimple ? 1 : 0}
STOP_EVENT=${q(svc.stopEvent ?? 'k3s-stopped')}

sim_exec() {
  sim_clean_run ${svc.exec.map(q).join(' ')}
}

sim_warn_changed() {
  [ -f "$STATE_DIR/unit-changed" ] || return 0
  echo "Warning: The unit file, source configuration file or drop-ins of $UNIT.service changed on disk. Run 'systemctl daemon-reload' to reload units." >&2
}

sim_state() {
  if [ -f "$STATE_DIR/service.state" ]; then cat "$STATE_DIR/service.state"; else echo inactive; fi
}

sim_set_state() {
  printf '%s\\n' "$1" > "$STATE_DIR/service.state"
  sim_now
  printf '%s\\n' "$sim_ts" > "$STATE_DIR/service.since"
}

# Root stands for HOMELAB_SIM_PRIVILEGED=1 (set by the fake sudo, or for root logins), never for
# the real uid: the test runner may well be root, and then nothing would be checked.
sim_require_root() {
  [ "$HOMELAB_SIM_PRIVILEGED" = 1 ] && return 0
  printf '%s\\n' "$1" >&2
  sim_log service.log service denied "$UNIT"
  exit 1
}

# HOMELAB_SIM_JOB_STARTED_MS: when this start or restart job began (ms), for the start report.
sim_clean_run() {
  env -i HOMELAB_SIM_PRIVILEGED=1 HOMELAB_SIM_JOB_STARTED_MS="\${sim_job_ms:-}" /bin/sh -c 'while IFS= read -r l || [ -n "$l" ]; do case $l in [A-Za-z_]*=*) export "$l" ;; esac; done < "$1"; shift; exec "$@"' sim-unit "$NODE_DIR/env" "$@" >> "$STATE_DIR/k3s.log" 2>&1
}

sim_service_start() {
  sim_exec
  sim_rc=$?
  if [ "$sim_rc" -eq 0 ]; then
    sim_set_state active
    sim_log service.log service started "$UNIT"
    return 0
  fi
  rm -f "$STATE_DIR/k3s.running"
  sim_log service.log service start-failed "$UNIT" "$sim_rc"
  if [ "$TYPE_SIMPLE" = 1 ]; then
    sim_set_state activating
    return 0
  fi
  sim_set_state failed
  return 1
}

sim_service_stop() {
  if [ "$(sim_state)" = active ]; then
    sim_clean_run node "$NODE_DIR/fakebin/.sim-notify" stopped "$STOP_EVENT" || sim_log service.log service notify-failed "$UNIT"
  fi
  rm -f "$STATE_DIR/k3s.running"
  sim_set_state inactive
  sim_log service.log service stopped "$UNIT"
}
`
}

export function systemctlScript(fixture: NodeFixture, svc: ServiceUnit = binaryService(fixture)): string {
  const cat = svc.unitText !== undefined
    ? `    printf '# %s\\n' "$FRAGMENT"
    cat <<'SIM_UNIT_EOF'
${svc.unitText}SIM_UNIT_EOF`
    : `    printf '# %s\\n' "$FRAGMENT"
    cat "$FRAGMENT"
${(svc.dropIns ?? []).map((d) => `    printf '\\n# %s\\n' ${q(d)}\n    cat ${q(d)}`).join('\n')}`
  return `${shPrelude(fixture, `systemctl (one unit: ${svc.unit}.service)`)}${shService(fixture, svc)}
set -f # unit lists below are split on whitespace, never globbed
sim_log service.log systemctl "$@"

sim_short() {
  case $1 in
    *.service) printf '%s' "\${1%.service}" ;;
    *) printf '%s' "$1" ;;
  esac
}

sim_verb=''
sim_units=''
sim_quiet=0
sim_value=0
sim_props=''
sim_want=''
for sim_arg in "$@"; do
  if [ -n "$sim_want" ]; then
    [ "$sim_want" = prop ] && sim_props="$sim_props,$sim_arg"
    sim_want=''
    continue
  fi
  case $sim_arg in
    --version)
      echo 'systemd 252 (252.33-1~deb12u1)'
      echo '+PAM +AUDIT +SELINUX +APPARMOR +IMA +SMACK +SECCOMP +GCRYPT -GNUTLS +OPENSSL +ACL +BLKID +CURL +ELFUTILS +FIDO2 +IDN2 -IDN +IPTC +KMOD +LIBCRYPTSETUP +LIBFDISK +PCRE2 -PWQUALITY +P11KIT +QRENCODE +TPM2 +BZIP2 +LZ4 +XZ +ZLIB +ZSTD -BPF_FRAMEWORK -XKBCOMMON +UTMP +SYSVINIT default-hierarchy=unified'
      exit 0 ;;
    -h|--help)
      echo 'systemctl [OPTIONS...] COMMAND ... (homelab simulation: start stop restart try-restart is-active is-enabled is-failed status show cat daemon-reload enable disable)'
      exit 0 ;;
    -q|--quiet) sim_quiet=1 ;;
    --value) sim_value=1 ;;
    -p|--property) sim_want=prop ;;
    -P) sim_want=prop; sim_value=1 ;;
    --property=*) sim_props="$sim_props,\${sim_arg#--property=}" ;;
    -p?*) sim_props="$sim_props,\${sim_arg#-p}" ;;
    -n|--lines) sim_want=skip ;;
    --no-pager|--no-ask-password|--no-block|--system|--full|-l|--plain|--no-legend|--now|--lines=*|-n?*|--wait) ;;
    -*) echo "systemctl: unrecognized option '$sim_arg'" >&2; exit 1 ;;
    *)
      if [ -z "$sim_verb" ]; then
        sim_verb=$sim_arg
      else
        sim_units="$sim_units$(sim_short "$sim_arg")
"
      fi ;;
  esac
done

sim_since() { cat "$STATE_DIR/service.since" 2>/dev/null; }

sim_show() {
  if [ "$1" = "$UNIT" ]; then
    sim_st=$(sim_state); sim_load=loaded; sim_ufs=enabled
    sim_frag=$FRAGMENT; sim_desc=$DESC; sim_start_ts=$(sim_since)
  else
    sim_st=inactive; sim_load=not-found; sim_ufs=''; sim_frag=''; sim_desc="$1.service"; sim_start_ts=''
  fi
  case $sim_st in
    active) sim_sub=running; sim_result=success ;;
    failed) sim_sub=failed; sim_result=exit-code ;;
    activating) sim_sub=auto-restart; sim_result=exit-code ;;
    *) sim_sub=dead; sim_result=success ;;
  esac
  for sim_p in Id Names Description LoadState ActiveState SubState Result UnitFileState FragmentPath ExecMainStartTimestamp; do
    case ",$sim_props," in
      ,,|*",$sim_p,"*) ;;
      *) continue ;;
    esac
    case $sim_p in
      Id|Names) sim_v="$1.service" ;;
      Description) sim_v=$sim_desc ;;
      LoadState) sim_v=$sim_load ;;
      ActiveState) sim_v=$sim_st ;;
      SubState) sim_v=$sim_sub ;;
      Result) sim_v=$sim_result ;;
      UnitFileState) sim_v=$sim_ufs ;;
      FragmentPath) sim_v=$sim_frag ;;
      ExecMainStartTimestamp) sim_v=$sim_start_ts ;;
    esac
    if [ "$sim_value" = 1 ]; then printf '%s\\n' "$sim_v"; else printf '%s=%s\\n' "$sim_p" "$sim_v"; fi
  done
}

sim_status() {
  sim_st=$(sim_state)
  case $sim_st in
    active) sim_dot='●'; sim_line="active (running) since $(sim_since)" ;;
    failed) sim_dot='×'; sim_line="failed (Result: exit-code) since $(sim_since)" ;;
    activating) sim_dot='●'; sim_line="activating (auto-restart) (Result: exit-code) since $(sim_since)" ;;
    *) sim_dot='○'; sim_line='inactive (dead)' ;;
  esac
  sim_warn_changed
  printf '%s %s.service - %s\\n' "$sim_dot" "$UNIT" "$DESC"
  printf '     Loaded: loaded (%s; enabled; preset: enabled)\\n' "$FRAGMENT"
  printf '     Active: %s\\n' "$sim_line"
  printf '       Docs: %s\\n\\n' "$DOCS"
  tail -n 5 "$STATE_DIR/k3s.log" 2>/dev/null
  [ "$sim_st" = active ]
}

sim_fail_job() {
  echo "Job for $UNIT.service failed because the control process exited with error code." >&2
  echo "See \\"systemctl status $UNIT.service\\" and \\"journalctl -xeu $UNIT.service\\" for details." >&2
  exit 1
}

sim_need_units() {
  if [ -z "$sim_units" ]; then echo 'Too few arguments.' >&2; exit 1; fi
}

case $sim_verb in
  '')
    echo '  UNIT LOAD ACTIVE SUB DESCRIPTION'
    echo "  $UNIT.service loaded $(sim_state) - $DESC"
    exit 0 ;;
  daemon-reload|daemon-reexec)
    sim_require_root 'Failed to reload daemon: Interactive authentication required.'
    rm -f "$STATE_DIR/unit-changed"
    exit 0 ;;
  start|stop|restart|try-restart|condrestart|reload-or-restart|force-reload)
    sim_need_units
    for sim_u in $sim_units; do
      if [ "$sim_u" != "$UNIT" ]; then
        echo "Failed to $sim_verb $sim_u.service: Unit $sim_u.service not found." >&2
        exit 5
      fi
    done
    sim_require_root "Failed to $sim_verb $UNIT.service: Interactive authentication required.
See system logs and 'systemctl status $UNIT.service' for details."
    sim_warn_changed
    sim_job_ms=$(date +%s%3N 2>/dev/null)
    case $sim_job_ms in *[!0-9]*) sim_job_ms='' ;; esac
    case $sim_verb in
      start)
        [ "$(sim_state)" = active ] && exit 0
        sim_service_start || sim_fail_job ;;
      stop)
        sim_service_stop ;;
      try-restart|condrestart)
        [ "$(sim_state)" = active ] || exit 0
        sim_service_stop
        sim_service_start || sim_fail_job ;;
      *)
        [ "$(sim_state)" = active ] && sim_service_stop
        sim_service_start || sim_fail_job ;;
    esac
    exit 0 ;;
  is-active|is-failed)
    sim_need_units
    sim_rc=3
    [ "$sim_verb" = is-failed ] && sim_rc=1
    for sim_u in $sim_units; do
      if [ "$sim_u" = "$UNIT" ]; then sim_st=$(sim_state); else sim_st=inactive; fi
      [ "$sim_quiet" = 1 ] || printf '%s\\n' "$sim_st"
      if [ "$sim_verb" = is-active ] && [ "$sim_st" = active ]; then sim_rc=0; fi
      if [ "$sim_verb" = is-failed ] && [ "$sim_st" = failed ]; then sim_rc=0; fi
    done
    exit "$sim_rc" ;;
  is-enabled)
    sim_need_units
    for sim_u in $sim_units; do
      if [ "$sim_u" != "$UNIT" ]; then
        echo "Failed to get unit file state for $sim_u.service: No such file or directory" >&2
        exit 1
      fi
      [ "$sim_quiet" = 1 ] || echo enabled
    done
    exit 0 ;;
  status)
    sim_need_units
    for sim_u in $sim_units; do
      if [ "$sim_u" != "$UNIT" ]; then
        echo "Unit $sim_u.service could not be found." >&2
        exit 4
      fi
    done
    sim_status || exit 3
    exit 0 ;;
  show)
    sim_need_units
    sim_first=1
    for sim_u in $sim_units; do
      [ "$sim_first" = 1 ] || echo
      sim_first=0
      sim_show "$sim_u"
    done
    exit 0 ;;
  cat)
    sim_need_units
    for sim_u in $sim_units; do
      if [ "$sim_u" != "$UNIT" ]; then echo "No files found for $sim_u.service." >&2; exit 1; fi
    done
${cat}
    exit 0 ;;
  enable|disable|reenable)
    sim_need_units
    for sim_u in $sim_units; do
      if [ "$sim_u" != "$UNIT" ]; then
        echo "Failed to $sim_verb unit: Unit file $sim_u.service does not exist." >&2
        exit 1
      fi
    done
    sim_require_root "Failed to $sim_verb unit: Interactive authentication required."
    exit 0 ;;
  *)
    echo "Unknown command verb '$sim_verb'." >&2
    exit 1 ;;
esac
`
}

function rcServiceScript(fixture: NodeFixture): string {
  return `${shPrelude(fixture, `rc-service (one service: ${fixture.serviceName}, run by supervise-daemon)`)}${shService(fixture, binaryService(fixture))}
sim_log service.log rc-service "$@"

sim_usage() {
  echo 'Usage: rc-service [options] [-i] <service> <cmd>...  or  rc-service [options] -e|-l (homelab simulation)'
}

sim_ifexists=0
while [ $# -gt 0 ]; do
  case $1 in
    -e|--exists)
      [ $# -ge 2 ] || { sim_usage >&2; exit 1; }
      [ "$2" = "$UNIT" ] && exit 0
      exit 1 ;;
    -l|--list) printf '%s\\n' "$UNIT"; exit 0 ;;
    -i|--ifexists) sim_ifexists=1 ;;
    -q|--quiet|-v|--verbose|-C|--nocolor|-I|--ifinactive|-N|--ifnotstarted|-s|--ifstarted|-c|--ifcrashed) ;;
    -h|--help) sim_usage; exit 0 ;;
    -V|--version) echo 'rc-service (OpenRC) 0.55.1 (Alpine Linux)'; exit 0 ;;
    --) shift; break ;;
    -*) echo "rc-service: unrecognized option '$1'" >&2; exit 1 ;;
    *) break ;;
  esac
  shift
done
[ $# -ge 1 ] || { sim_usage >&2; exit 1; }
sim_svc=$1
shift
if [ "$sim_svc" != "$UNIT" ]; then
  [ "$sim_ifexists" = 1 ] && exit 0
  echo " * rc-service: service '$sim_svc' does not exist" >&2
  exit 1
fi
[ $# -ge 1 ] || { echo " * $UNIT: no command given" >&2; exit 1; }

sim_start() {
  printf ' * Starting %s ...' "$UNIT"
  if sim_service_start; then
    printf ' [ ok ]\\n'
    return 0
  fi
  printf ' [ !! ]\\n'
  echo " * ERROR: $UNIT failed to start" >&2
  exit 1
}

sim_stop() {
  printf ' * Stopping %s ...' "$UNIT"
  sim_service_stop
  printf ' [ ok ]\\n'
}

for sim_cmd in "$@"; do
  case $sim_cmd in
    start|stop|restart|zap) sim_require_root " * $UNIT: root access required" ;;
  esac
  case $sim_cmd in
    start)
      if [ "$(sim_state)" = active ]; then echo " * WARNING: $UNIT has already been started"; else sim_start; fi ;;
    stop)
      if [ "$(sim_state)" = active ]; then sim_stop; else echo " * WARNING: $UNIT is already stopped"; fi ;;
    restart)
      [ "$(sim_state)" = active ] && sim_stop
      sim_start ;;
    status)
      case $(sim_state) in
        active) echo ' * status: started'; exit 0 ;;
        failed) echo ' * status: crashed'; exit 32 ;;
        *) echo ' * status: stopped'; exit 3 ;;
      esac ;;
    zap)
      rm -f "$STATE_DIR/k3s.running"
      sim_set_state inactive
      echo " * Manually resetting $UNIT to stopped state" ;;
    *)
      echo " * $UNIT: unknown function '$sim_cmd'" >&2
      exit 1 ;;
  esac
done
exit 0
`
}

function openrcScript(fixture: NodeFixture): string {
  return `${shPrelude(fixture, 'openrc (present so the node reads as an OpenRC system)')}
sim_log service.log openrc "$@"
case $1 in
  -V|--version) echo 'openrc (OpenRC) 0.55.1 (Alpine Linux)' ;;
esac
exit 0
`
}

function rcStatusScript(fixture: NodeFixture): string {
  return `${shPrelude(fixture, 'rc-status')}
sim_log service.log rc-status "$@"
case $(cat "$STATE_DIR/service.state" 2>/dev/null) in
  active) sim_word=started ;;
  failed) sim_word=crashed ;;
  *) sim_word=stopped ;;
esac
echo 'Runlevel: default'
printf ' %-40s [  %s  ]\\n' ${q(fixture.serviceName)} "$sim_word"
exit 0
`
}

/** Where the unit file lives: install.sh's /etc/systemd/system (k3s), the tarball's /usr/local/lib or the RPM's /usr/lib (rke2). */
function unitFragmentPath(fixture: NodeFixture): string {
  if (fixture.distribution === 'k3s') return `/etc/systemd/system/${fixture.serviceName}.service`
  return `${fixture.packageOwned === 'rpm' ? '/usr/lib' : '/usr/local/lib'}/systemd/system/${fixture.serviceName}.service`
}

// Shared by the package tools: is "$1" the binary the package owns (as given, or resolved)?
function shOwned(fixture: NodeFixture): string {
  return `
OWNED=${q(fixture.binaryPath)}
sim_owned() {
  [ "$1" = "$OWNED" ] && return 0
  sim_real=$(realpath -- "$1" 2>/dev/null) || return 1
  [ "$sim_real" = "$(realpath -- "$OWNED" 2>/dev/null)" ]
}
`
}

/** `sim_host <args…>`: the host's own tool runs what the fake does not simulate. */
function shHostTool(tool: string): string {
  return `sim_host() {
  for sim_dir in /usr/bin /bin /usr/local/bin; do
    [ -x "$sim_dir/${tool}" ] && exec "$sim_dir/${tool}" "$@"
  done
  echo "${tool}: homelab simulation: $1 is not simulated" >&2
  exit 2
}
`
}

/** rpm whose database holds one package, the one that installed the node's binary. */
function rpmScript(fixture: NodeFixture, pkg: OwnerPackage): string {
  return `${shPrelude(fixture, `rpm (its database knows one package, ${pkg.rpm}, owner of the ${fixture.distribution} binary)`)}${shOwned(fixture)}
sim_log service.log rpm "$@"
NAME=${q(pkg.name)}
VERSION=${q(pkg.version)}
RELEASE=${q(pkg.release)}
ARCH=${q(pkg.rpmArch)}
NEVRA="$NAME-$VERSION-$RELEASE.$ARCH"

sim_query=0
sim_file=0
sim_qf=''
sim_want=''
sim_ops=''
for sim_arg in "$@"; do
  if [ "$sim_want" = qf ]; then sim_qf=$sim_arg; sim_want=''; continue; fi
  case $sim_arg in
    --version) echo 'RPM version 4.16.1.3'; exit 0 ;;
    -q|--query) sim_query=1 ;;
    -qf|-fq) sim_query=1; sim_file=1 ;;
    -f|--file) sim_file=1 ;;
    --qf|--queryformat) sim_want=qf ;;
    --qf=*|--queryformat=*) sim_qf=\${sim_arg#*=} ;;
    --quiet|--nosignature|--nodigest|--nofiles) ;;
    -*) echo "rpm: $sim_arg: unknown option" >&2; exit 1 ;;
    *) sim_ops="$sim_ops$sim_arg
" ;;
  esac
done
if [ "$sim_query" != 1 ]; then
  echo 'rpm: homelab simulation: only queries (-q, -qf) are simulated' >&2
  exit 1
fi
if [ -z "$sim_ops" ]; then echo 'rpm: no arguments given for query' >&2; exit 1; fi

sim_print() {
  if [ -z "$sim_qf" ]; then printf '%s\\n' "$NEVRA"; return; fi
  sim_out=$(printf '%s' "$sim_qf" | sed -e "s/%{NAME}/$NAME/g" -e "s/%{VERSION}/$VERSION/g" -e "s/%{RELEASE}/$RELEASE/g" -e "s/%{ARCH}/$ARCH/g")
  printf '%b' "$sim_out"
}

sim_rc=0
set -f
IFS='
'
for sim_op in $sim_ops; do
  if [ "$sim_file" = 1 ]; then
    if sim_owned "$sim_op"; then
      sim_print
    elif [ -e "$sim_op" ]; then
      printf 'file %s is not owned by any package\\n' "$sim_op"; sim_rc=1
    else
      printf 'error: file %s: No such file or directory\\n' "$sim_op" >&2; sim_rc=1
    fi
  else
    case $sim_op in
      "$NAME"|"$NAME-$VERSION"|"$NAME-$VERSION-$RELEASE"|"$NEVRA") sim_print ;;
      *) printf 'package %s is not installed\\n' "$sim_op"; sim_rc=1 ;;
    esac
  fi
done
exit "$sim_rc"
`
}

/** dpkg or dpkg-query whose database holds the package that installed the node's binary; other verbs go to the host's dpkg. */
function dpkgScript(fixture: NodeFixture, pkg: OwnerPackage, tool: 'dpkg' | 'dpkg-query'): string {
  return `${shPrelude(fixture, `${tool} (it knows the package ${pkg.dpkg}, owner of the ${fixture.distribution} binary; anything else is the host's)`)}${shOwned(fixture)}
sim_log service.log ${tool} "$@"
PKG=${q(pkg.dpkg)}
VERSION=${q(pkg.debVersion)}
ARCH=${q(pkg.debArch)}

${shHostTool(tool)}
case $1 in
  -S|--search)
    shift
    if [ $# -eq 0 ]; then echo 'dpkg-query: error: --search needs at least one file name pattern argument' >&2; exit 2; fi
    sim_rc=0
    for sim_p in "$@"; do
      if sim_owned "$sim_p"; then
        printf '%s: %s\\n' "$PKG" "$sim_p"
      else
        printf 'dpkg-query: no path found matching pattern %s\\n' "$sim_p" >&2; sim_rc=1
      fi
    done
    exit "$sim_rc" ;;
  -s|--status)
    shift
    sim_rc=0
    for sim_p in "$@"; do
      if [ "$sim_p" = "$PKG" ]; then
        printf 'Package: %s\\nStatus: install ok installed\\nPriority: optional\\nSection: admin\\nArchitecture: %s\\nVersion: %s\\nDescription: homelab simulation: the package that installed %s\\n' "$PKG" "$ARCH" "$VERSION" "$OWNED"
      else
        printf "dpkg-query: package '%s' is not installed and no information is available\\n" "$sim_p" >&2; sim_rc=1
      fi
    done
    [ "$sim_rc" = 0 ] || echo 'Use dpkg --info (= dpkg-deb --info) to examine archive files.' >&2
    exit "$sim_rc" ;;
  -W|--show)
    shift
    sim_fmt='\${Package}\\t\${Version}\\n'
    case $1 in
      -f|--showformat) sim_fmt=$2; shift 2 ;;
      -f?*) sim_fmt=\${1#-f}; shift ;;
      --showformat=*) sim_fmt=\${1#*=}; shift ;;
    esac
    sim_rc=0
    for sim_p in "$@"; do
      if [ "$sim_p" = "$PKG" ]; then
        sim_out=$(printf '%s' "$sim_fmt" | sed -e "s/\\\${Package}/$PKG/g" -e "s/\\\${Version}/$VERSION/g" -e "s/\\\${Architecture}/$ARCH/g" -e 's/\\\${Status}/install ok installed/g' -e 's/\\\${db:Status-Abbrev}/ii /g')
        printf '%b' "$sim_out"
      else
        printf 'dpkg-query: no packages found matching %s\\n' "$sim_p" >&2; sim_rc=1
      fi
    done
    exit "$sim_rc" ;;
  *) sim_host "$@" ;;
esac
`
}

const HOST_DPKG = ['/usr/bin/dpkg', '/bin/dpkg'].some((path) => existsSync(path))

/** dpkg on a node whose binary no package installed: `-S` of the node's files finds nothing; the rest is the host's. */
function unownedDpkgScript(fixture: NodeFixture, tool: 'dpkg' | 'dpkg-query'): string {
  return `${shPrelude(fixture, `${tool} (its database holds none of this node's files; anything else is the host's)`)}
${shHostTool(tool)}
case $1 in
  -S|--search)
    shift
    if [ $# -eq 0 ]; then echo 'dpkg-query: error: --search needs at least one file name pattern argument' >&2; exit 2; fi
    for sim_p in "$@"; do
      case $sim_p in "$NODE_DIR"/*) ;; *) sim_host -S "$@" ;; esac
    done
    for sim_p in "$@"; do printf 'dpkg-query: no path found matching pattern %s\\n' "$sim_p" >&2; done
    exit 1 ;;
  *) sim_host "$@" ;;
esac
`
}

function notSystemdScript(fixture: NodeFixture): string {
  return `${shPrelude(fixture, 'systemctl on an OpenRC node (shadows any systemctl the host has)')}
sim_log service.log systemctl "$@"
echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2
echo 'Failed to connect to bus: Host is down' >&2
exit 1
`
}

export function sudoScript(fixture: NodeFixture): string {
  return `${shPrelude(fixture, 'sudo (runs the command as the same user; the simulation has no root)')}
# Counts sudo's own option words, in a function so that the caller's argv stays whole for the log.
sim_parse() {
  sim_optcount=0
  sim_nonint=0
  while [ $# -gt 0 ]; do
    case $1 in
      --) sim_optcount=$((sim_optcount + 1)); return 0 ;;
      -u|-g|--user|--group)
        if [ $# -lt 2 ]; then echo "sudo: option requires an argument -- '$1'" >&2; return 1; fi
        sim_optcount=$((sim_optcount + 2))
        shift 2
        continue ;;
      --non-interactive) sim_nonint=1 ;;
      -[nEHSk]|-[nEHSk][nEHSk]|-[nEHSk][nEHSk][nEHSk]|-[nEHSk][nEHSk][nEHSk][nEHSk])
        case $1 in *n*) sim_nonint=1 ;; esac ;;
      --preserve-env|--preserve-env=*|--set-home|--stdin|--reset-timestamp|--user=*|--group=*|-u?*|-g?*) ;;
      -*) echo "sudo: invalid option -- '$1'" >&2; echo 'usage: sudo [-nEHSk] [-u user] [--] command [arg ...]' >&2; return 1 ;;
      *) return 0 ;;
    esac
    sim_optcount=$((sim_optcount + 1))
    shift
  done
}

sim_parse "$@" || exit 1
sim_log sudo.log sudo "$sim_optcount" "$@"
shift "$sim_optcount"
if [ $# -eq 0 ]; then
  echo 'usage: sudo [-nEHSk] [-u user] [--] command [arg ...]' >&2
  exit 1
fi
# VAR=value before the command: the default sudoers policy (no SETENV) refuses it.
sim_setenv=''
while [ $# -gt 0 ]; do
  case $1 in
    [A-Za-z_]*=*) sim_setenv="$sim_setenv\${sim_setenv:+, }\${1%%=*}"; shift ;;
    *) break ;;
  esac
done
if [ -n "$sim_setenv" ]; then
  echo "sudo: sorry, you are not allowed to set the following environment variables: $sim_setenv" >&2
  exit 1
fi
if [ -e "$STATE_DIR/sudo-password-required" ]; then
  if [ "$sim_nonint" = 0 ]; then
    echo 'sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper' >&2
  fi
  echo 'sudo: a password is required' >&2
  exit 1
fi
if ! command -v "$1" >/dev/null 2>&1; then
  echo "sudo: $1: command not found" >&2
  exit 1
fi
HOMELAB_SIM_PRIVILEGED=1
export HOMELAB_SIM_PRIVILEGED
exec "$@"
`
}

export function unameScript(fixture: Pick<NodeFixture, 'name'>, machine: string, real: string): string {
  return `#!/bin/sh
# homelab simulation: uname on node ${fixture.name}, whose machine is ${machine}; the rest is the host's.
MACHINE=${q(machine)}
REAL=${q(real)}
[ $# -eq 0 ] && exec "$REAL"
s=0; n=0; r=0; v=0; m=0; p=0; i=0; o=0; all=0
for sim_arg in "$@"; do
  case $sim_arg in
    --all) all=1 ;;
    --kernel-name) s=1 ;;
    --nodename) n=1 ;;
    --kernel-release) r=1 ;;
    --kernel-version) v=1 ;;
    --machine) m=1 ;;
    --processor) p=1 ;;
    --hardware-platform) i=1 ;;
    --operating-system) o=1 ;;
    --*) exec "$REAL" "$@" ;;
    -?*)
      sim_rest=\${sim_arg#-}
      while [ -n "$sim_rest" ]; do
        sim_c=\${sim_rest%"\${sim_rest#?}"}
        sim_rest=\${sim_rest#?}
        case $sim_c in
          a) all=1 ;; s) s=1 ;; n) n=1 ;; r) r=1 ;; v) v=1 ;; m) m=1 ;; p) p=1 ;; i) i=1 ;; o) o=1 ;;
          *) exec "$REAL" "$@" ;;
        esac
      done ;;
    *) exec "$REAL" "$@" ;;
  esac
done
real_m=$("$REAL" -m)
sim_field() {
  sim_val=$("$REAL" "-$1" 2>/dev/null) || sim_val=unknown
  [ "$sim_val" = "$real_m" ] && sim_val=$MACHINE
}
out=''
add() { if [ -n "$out" ]; then out="$out $1"; else out=$1; fi; }
if [ "$all" = 1 ]; then s=1; n=1; r=1; v=1; m=1; o=1; fi
[ "$s" = 1 ] && add "$("$REAL" -s)"
[ "$n" = 1 ] && add "$("$REAL" -n)"
[ "$r" = 1 ] && add "$("$REAL" -r)"
[ "$v" = 1 ] && add "$("$REAL" -v)"
[ "$m" = 1 ] && add "$MACHINE"
if [ "$p" = 1 ] || [ "$all" = 1 ]; then
  sim_field p
  if [ "$p" = 1 ] || [ "$sim_val" != unknown ]; then add "$sim_val"; fi
fi
if [ "$i" = 1 ] || [ "$all" = 1 ]; then
  sim_field i
  if [ "$i" = 1 ] || [ "$sim_val" != unknown ]; then add "$sim_val"; fi
fi
if [ "$o" = 1 ]; then
  sim_field o
  [ "$sim_val" = unknown ] || add "$sim_val"
fi
printf '%s\\n' "$out"
`
}

// Stop notification: the fake k3s (and kubelet) does not keep running, so the service manager
// reports the stop on its behalf: `.sim-notify stopped [k3s-stopped|kubelet-stopped]`. Same
// CommonJS/ESM-neutral style as the fake binary.
export const NOTIFY_SCRIPT = String.raw`#!/usr/bin/env node
// homelab simulation: tells the simulated API that this node's service (k3s, rke2, kubelet) stopped.
(async function main() {
  const http = await import('node:http');
  const control = (process.env.HOMELAB_SIM_CONTROL || '').replace(/\/+$/, '');
  const node = process.env.HOMELAB_SIM_NODE || '';
  const event = process.argv[3] || 'k3s-stopped';
  if (!control || !node || process.argv[2] !== 'stopped' || !/^(k3s|kubelet)-stopped$/.test(event)) {
    process.stderr.write('usage: .sim-notify stopped [k3s-stopped|kubelet-stopped] (inside a simulated node)\n');
    process.exitCode = 2;
    return;
  }
  const url = control + '/nodes/' + encodeURIComponent(node) + '/' + event;
  try {
    await new Promise((resolve, reject) => {
      const req = http.request(url, {
        method: 'POST',
        headers: {'content-type': 'application/json', 'content-length': 2},
        signal: AbortSignal.timeout(30000),
      }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode >= 200 && res.statusCode < 300 ? resolve() : reject(new Error('HTTP ' + res.statusCode))));
      });
      req.on('error', reject);
      req.end('{}');
    });
  } catch (err) {
    process.stderr.write(event + ' report to ' + url + ' failed: ' + (err && err.message ? err.message : String(err)) + '\n');
    process.exitCode = 1;
  }
})();
`
