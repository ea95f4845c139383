#!/usr/bin/env node
/**
 * homelab simulation: the tools of a simulated kubeadm node, in one CommonJS file. Not the
 * real tools. The node fixture (kubeadm-node.ts) copies it to `<node>/fakebin/.kubeadm-tools.cjs`
 * and puts small sh wrappers on PATH that run `node .kubeadm-tools.cjs <tool>[@<version>] ARGS`:
 *
 *   apt-get apt-cache apt-mark apt-config dpkg dpkg-query   (apt nodes)
 *   dnf rpm                                                  (dnf nodes)
 *   kubeadm kubelet kubectl crictl                           (<node>/usr/bin, written by the packages)
 *   etcdctl (control planes with stacked etcd), swapon
 *
 * Each behaves like the real tool where a product upgrading a kubeadm cluster touches it:
 * the same output formats, messages and exit codes (see the comments per tool). Everything a
 * real host keeps under / lives under the node directory ($HOMELAB_SIM_ROOT): etc/apt,
 * etc/yum.repos.d, etc/kubernetes, var/lib/apt/lists, var/lib/kubelet, var/lib/etcd, usr/bin.
 * The package database is state/packages.json, the knobs state/knobs.json, the node's static
 * description state/kubeadm-node.json (all written by kubeadm-node.ts). Root is
 * HOMELAB_SIM_PRIVILEGED=1, as for the other fakes. Nothing is fetched beyond loopback: another
 * host fails as a host without DNS does ("Temporary failure resolving").
 *
 * The TypeScript side loads this file too (createRequire) for the pure helpers at the end:
 * package version schemes, version comparison, apt list file names, the etcd/CoreDNS tables.
 *
 * Plain CommonJS with no dependencies; it never calls process.exit (piped output stays whole).
 */
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const crypto = require('node:crypto')
const zlib = require('node:zlib')

// ----------------------------------------------------------------------------- versions

const KUBE_RE = /^v?(\d+)\.(\d+)\.(\d+)(?:-((alpha|beta|rc)\.(\d+)))?$/

/** `v1.31.4` (or `1.31.4`, `v1.33.0-rc.1`) → its parts, or null. */
function parseKube(v) {
  const m = KUBE_RE.exec(String(v || '').trim())
  if (!m) return null
  const pre = m[4] || ''
  return {major: +m[1], minor: +m[2], patch: +m[3], pre, preKind: m[5] || '', preNum: m[6] ? +m[6] : 0, text: `v${m[1]}.${m[2]}.${m[3]}${pre ? '-' + pre : ''}`}
}

const PRE_ORDER = {alpha: 0, beta: 1, rc: 2}

function compareKube(a, b) {
  const x = typeof a === 'string' ? parseKube(a) : a
  const y = typeof b === 'string' ? parseKube(b) : b
  for (const k of ['major', 'minor', 'patch']) if (x[k] !== y[k]) return x[k] - y[k]
  if (!x.pre || !y.pre) return (x.pre ? -1 : 0) - (y.pre ? -1 : 0)
  if (x.preKind !== y.preKind) return PRE_ORDER[x.preKind] - PRE_ORDER[y.preKind]
  return x.preNum - y.preNum
}

/** etcd image tag kubeadm picks per Kubernetes minor (kubeadm's SupportedEtcdVersion). */
const ETCD_BY_MINOR = {27: '3.5.12-0', 28: '3.5.15-0', 29: '3.5.16-0', 30: '3.5.15-0', 31: '3.5.15-0', 32: '3.5.16-0', 33: '3.5.21-0', 34: '3.6.4-0', 35: '3.6.5-0'}
/** CoreDNS image tag a kubeadm of each minor deploys (kubeadm's CoreDNSVersion). */
const COREDNS_BY_MINOR = {27: 'v1.10.1', 28: 'v1.10.1', 29: 'v1.11.1', 30: 'v1.11.1', 31: 'v1.11.3', 32: 'v1.11.3', 33: 'v1.12.0', 34: 'v1.12.1', 35: 'v1.12.1'}
const CRI_TOOLS_PATCH = {29: 0, 30: 1, 31: 1, 32: 0, 33: 0, 34: 0}
const CNI_BY_MINOR = {28: '1.2.0', 29: '1.3.0', 30: '1.4.0', 31: '1.5.1', 32: '1.6.0', 33: '1.6.0', 34: '1.7.1'}

function nearest(table, minor) {
  const keys = Object.keys(table).map(Number).sort((a, b) => a - b)
  const key = keys.filter((k) => k <= minor).pop() ?? keys[0]
  return table[key]
}
function etcdVersionFor(kube) { return nearest(ETCD_BY_MINOR, parseKube(kube).minor) }
function coreDnsVersionFor(kube) { return nearest(COREDNS_BY_MINOR, parseKube(kube).minor) }

/** The packages every pkgs.k8s.io minor repository carries; the first three follow the Kubernetes release. */
const CORE_PACKAGES = ['kubeadm', 'kubelet', 'kubectl']
const SUPPORT_PACKAGES = ['cri-tools', 'kubernetes-cni']
const ALL_PACKAGES = [...CORE_PACKAGES, ...SUPPORT_PACKAGES]

/** The upstream part of a package's version: `1.31.4` (`1.33.0~rc.1`), cri-tools `1.31.1`, kubernetes-cni `1.5.1`. */
function upstreamVersion(pkg, kube) {
  const k = parseKube(kube)
  if (!k) throw new Error(`not a Kubernetes version: ${kube}`)
  if (CORE_PACKAGES.includes(pkg)) return `${k.major}.${k.minor}.${k.patch}${k.pre ? '~' + k.pre : ''}`
  if (pkg === 'cri-tools') return `${k.major}.${k.minor}.${nearest(CRI_TOOLS_PATCH, k.minor)}`
  if (pkg === 'kubernetes-cni') return nearest(CNI_BY_MINOR, k.minor)
  throw new Error(`no such Kubernetes package: ${pkg}`)
}
/** pkgs.k8s.io's Debian revision: `1.31.4-1.1`. */
function debVersion(pkg, kube) { return `${upstreamVersion(pkg, kube)}-1.1` }
/** pkgs.k8s.io's RPM version and release: `1.31.4` / `150500.1.1`. */
function rpmEvr(pkg, kube) { return {epoch: '0', version: upstreamVersion(pkg, kube), release: '150500.1.1'} }
/** `1.31.4-1.1`, `1.31.4-150500.1.1` or `1.31.4` → `v1.31.4` (the binary's version). */
function kubeOfPackageVersion(v) {
  const upstream = String(v).replace(/^\d+:/, '').replace(/-[^-]*$/, '')
  return 'v' + upstream.replace('~', '-')
}

const DEB_ARCH = {amd64: 'amd64', arm64: 'arm64', s390x: 's390x'}
const RPM_ARCH = {amd64: 'x86_64', arm64: 'aarch64', s390x: 's390x'}

// dpkg's version comparison (lib/dpkg/version.c): epoch, then upstream and revision by verrevcmp.
function dpkgOrder(c) {
  if (c === undefined) return 0
  if (c === '~') return -1
  if (c >= '0' && c <= '9') return 0
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0)
  return c.charCodeAt(0) + 256
}
function isDigit(c) { return c !== undefined && c >= '0' && c <= '9' }
function verrevcmp(a, b) {
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    let firstDiff = 0
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const ac = dpkgOrder(a[i])
      const bc = dpkgOrder(b[j])
      if (ac !== bc) return ac - bc
      i++
      j++
    }
    while (a[i] === '0') i++
    while (b[j] === '0') j++
    while (isDigit(a[i]) && isDigit(b[j])) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j)
      i++
      j++
    }
    if (isDigit(a[i])) return 1
    if (isDigit(b[j])) return -1
    if (firstDiff) return firstDiff
  }
  return 0
}
function splitDeb(v) {
  const m = /^(?:(\d+):)?(.*?)(?:-([^-]*))?$/.exec(v)
  return {epoch: Number(m[1] || 0), upstream: m[2], revision: m[3] || ''}
}
function compareDeb(a, b) {
  const x = splitDeb(a)
  const y = splitDeb(b)
  if (x.epoch !== y.epoch) return x.epoch - y.epoch
  return verrevcmp(x.upstream, y.upstream) || verrevcmp(x.revision, y.revision)
}

// rpm's rpmvercmp (rpmio/rpmvercmp.c), and EVR comparison.
function rpmvercmp(a, b) {
  if (a === b) return 0
  let i = 0
  let j = 0
  const sep = (c) => c !== undefined && !/[A-Za-z0-9~^]/.test(c)
  while (i < a.length || j < b.length) {
    while (i < a.length && sep(a[i])) i++
    while (j < b.length && sep(b[j])) j++
    if (a[i] === '~' || b[j] === '~') {
      if (a[i] !== '~') return 1
      if (b[j] !== '~') return -1
      i++
      j++
      continue
    }
    if (a[i] === '^' || b[j] === '^') {
      if (i >= a.length) return -1
      if (j >= b.length) return 1
      if (a[i] !== '^') return 1
      if (b[j] !== '^') return -1
      i++
      j++
      continue
    }
    if (!(i < a.length && j < b.length)) break
    const numeric = isDigit(a[i])
    const re = numeric ? /^\d+/ : /^[A-Za-z]+/
    const sa = re.exec(a.slice(i))[0]
    const mb = re.exec(b.slice(j))
    if (!mb) return numeric ? 1 : -1
    const sb = mb[0]
    i += sa.length
    j += sb.length
    if (numeric) {
      const na = sa.replace(/^0+/, '')
      const nb = sb.replace(/^0+/, '')
      if (na.length !== nb.length) return na.length > nb.length ? 1 : -1
      if (na !== nb) return na > nb ? 1 : -1
    } else if (sa !== sb) {
      return sa > sb ? 1 : -1
    }
  }
  if (i >= a.length && j >= b.length) return 0
  return i >= a.length ? -1 : 1
}
/** `[epoch:]version-release` strings or {epoch, version, release}. */
function compareRpm(a, b) {
  const x = typeof a === 'string' ? splitRpm(a) : a
  const y = typeof b === 'string' ? splitRpm(b) : b
  return (Number(x.epoch || 0) - Number(y.epoch || 0)) || rpmvercmp(x.version, y.version) || rpmvercmp(x.release || '', y.release || '')
}
function splitRpm(v) {
  const m = /^(?:(\d+):)?([^-]+)(?:-(.+))?$/.exec(v)
  return {epoch: m[1] || '0', version: m[2], release: m[3] || ''}
}

/** A shell-style glob (`*`, `?`, `[...]`) as an anchored RegExp, the way apt and dnf match versions and names. */
function globToRegExp(glob) {
  let re = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]
    if (c === '*') re += '.*'
    else if (c === '?') re += '.'
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1)
      if (end === -1) re += '\\['
      else {
        re += '[' + glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\') + ']'
        i = end
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&')
  }
  return new RegExp('^' + re + '$')
}

/** apt's URItoFileName: `http://127.0.0.1:8080/core:/stable:/v1.31/deb/` → `127.0.0.1:8080_core:_stable:_v1.31_deb_`. */
function aptListFileName(uri) {
  return uri.replace(/^[a-z0-9+.-]+:\/\//i, '').replace(/^[^@/]*@/, '').replace(/\//g, '_')
}

/** deb822 stanzas (Packages, Release, *.sources, dpkg status) → array of {lowercased field: value}. */
function parseDeb822(text) {
  const out = []
  let current = null
  let last = null
  for (const line of String(text).split('\n')) {
    if (line.trim() === '') {
      if (current) out.push(current)
      current = null
      continue
    }
    if (line.startsWith('#')) continue
    if (/^[ \t]/.test(line)) {
      if (current && last) current[last] += '\n' + line.trim()
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    current = current || {}
    last = line.slice(0, colon).toLowerCase()
    current[last] = line.slice(colon + 1).trim()
  }
  if (current) out.push(current)
  return out
}

function sha256(buf) { return crypto.createHash('sha256').update(buf).digest('hex') }

// ----------------------------------------------------------------------------- running as a tool

class Exit extends Error {
  constructor(code) {
    super(`exit ${code}`)
    this.code = code
  }
}

const out = (s) => process.stdout.write(s)
const errw = (s) => process.stderr.write(s)

function readJson(file, fallback) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch {
    if (fallback !== undefined) return fallback
    throw new Error(`homelab simulation: cannot read ${file}`)
  }
}
function writeJson(file, value) {
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n')
  fs.renameSync(tmp, file)
}
function exists(p) { return fs.existsSync(p) }
function readText(p) {
  try {
    return fs.readFileSync(p, 'utf8')
  } catch {
    return null
  }
}

function nodeContext() {
  const env = process.env
  const root = env.HOMELAB_SIM_ROOT
  if (!root) {
    errw('homelab simulation: this tool runs inside a simulated node (HOMELAB_SIM_ROOT is not set)\n')
    throw new Exit(2)
  }
  const state = path.join(root, 'state')
  const node = readJson(path.join(state, 'kubeadm-node.json'))
  return {
    root,
    state,
    node,
    env,
    privileged: env.HOMELAB_SIM_PRIVILEGED === '1',
    knobs: readJson(path.join(state, 'knobs.json'), {}),
    user: env.USER || env.LOGNAME || 'user',
  }
}

function logCommand(ctx, tool, args) {
  const record = [new Date().toISOString(), tool, ctx.privileged ? '1' : '0', ...args].join('\x1f') + '\x1e\n'
  try {
    fs.appendFileSync(path.join(ctx.state, 'commands.log'), record)
  } catch {}
}

function packageDb(ctx) { return readJson(path.join(ctx.state, 'packages.json'), {}) }
function savePackageDb(ctx, db) { writeJson(path.join(ctx.state, 'packages.json'), db) }

// ----------------------------------------------------------------------------- HTTP (loopback only)

function isLoopback(host) {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}

function netError(kind, message, extra) {
  return Object.assign(new Error(message), {net: kind}, extra)
}

/**
 * GET with redirects followed, refusing every host but loopback (the simulation never reaches
 * further). Resolves {status, statusText, body, url, host, port}; rejects with `.net` set:
 * resolve (not loopback), refused, failed (reset, closed), tls (https to the plain server).
 */
async function httpGet(url) {
  let current = url
  for (let hop = 0; hop <= 10; hop++) {
    let u
    try {
      u = new URL(current)
    } catch {
      throw netError('failed', `Invalid URL ${current}`)
    }
    const host = u.hostname.replace(/^\[|\]$/g, '')
    const port = u.port || (u.protocol === 'https:' ? '443' : '80')
    if (!isLoopback(host)) throw netError('resolve', `Temporary failure resolving '${host}'`, {host, port})
    if (u.protocol !== 'http:') throw netError('tls', 'Could not handshake: An unexpected TLS packet was received.', {host, port})
    let res
    try {
      res = await fetch(current, {redirect: 'manual', signal: AbortSignal.timeout(10000)})
    } catch (e) {
      const code = e && e.cause && e.cause.code
      if (code === 'ECONNREFUSED') throw netError('refused', `Could not connect to ${host}:${port} (${host}). - connect (111: Connection refused)`, {host, port})
      throw netError('failed', `Connection failed [IP: ${host} ${port}]`, {host, port})
    }
    const location = res.headers.get('location')
    if (res.status >= 300 && res.status < 400 && location) {
      await res.arrayBuffer().catch(() => undefined)
      current = new URL(location, current).href
      continue
    }
    let body
    try {
      body = Buffer.from(await res.arrayBuffer())
    } catch {
      throw netError('failed', `Connection failed [IP: ${host} ${port}]`, {host, port})
    }
    return {status: res.status, statusText: res.statusText || (res.status === 404 ? 'Not Found' : ''), body, url: current, host, port}
  }
  throw netError('failed', `Too many redirects for ${url}`)
}

async function control(ctx, method, route, body) {
  const base = (ctx.env.HOMELAB_SIM_CONTROL || '').replace(/\/+$/, '')
  if (!base) throw new Error('HOMELAB_SIM_CONTROL is not set')
  const res = await fetch(base + route, {
    method,
    headers: body === undefined ? {} : {'content-type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  })
  const text = await res.text()
  let json = {}
  try {
    json = text ? JSON.parse(text) : {}
  } catch {
    json = {error: text}
  }
  if (!res.ok) throw Object.assign(new Error(json.error || `HTTP ${res.status}`), {status: res.status})
  return json
}

// ----------------------------------------------------------------------------- binaries the packages install

/** The sh wrapper a package writes for one of its binaries: the version is baked in. */
function binaryWrapper(ctx, tool, kube, pkg, pkgVersion) {
  const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`
  return `#!/bin/sh\n# homelab simulation: ${tool} ${kube} from package ${pkg} ${pkgVersion}. Not ${tool}.\n` +
    `exec ${q(process.execPath)} ${q(path.join(ctx.root, 'fakebin', '.kubeadm-tools.cjs'))} ${q(`${tool}@${kube}`)} "$@"\n`
}

/** What installing a package version puts on disk (binaries; the kubelet also its unit files). */
function installPayload(ctx, pkg, version, opts = {}) {
  const kube = kubeOfPackageVersion(version)
  const bin = ctx.node.binDir
  fs.mkdirSync(bin, {recursive: true})
  const write = (tool, text) => {
    const file = path.join(bin, tool)
    const tmp = `${file}.dpkg-new`
    fs.writeFileSync(tmp, text, {mode: 0o755})
    fs.renameSync(tmp, file)
  }
  if (CORE_PACKAGES.includes(pkg)) write(pkg, binaryWrapper(ctx, pkg, kube, pkg, version))
  if (pkg === 'cri-tools') write('crictl', binaryWrapper(ctx, 'crictl', kube, pkg, version))
  if (pkg === 'kubelet') {
    // The package ships the unit; systemd notices the file changed until daemon-reload.
    fs.writeFileSync(ctx.node.unitFile, unitFile(ctx.node))
    if (!opts.initial) fs.writeFileSync(path.join(ctx.state, 'unit-changed'), 'kubelet\n')
  }
}

function unitFile(node) {
  return `[Unit]\nDescription=kubelet: The Kubernetes Node Agent\nDocumentation=https://kubernetes.io/docs/\nWants=network-online.target\nAfter=network-online.target\n\n` +
    `[Service]\nExecStart=${node.binDir}/kubelet\nRestart=always\nStartLimitInterval=0\nRestartSec=10\n\n[Install]\nWantedBy=multi-user.target\n`
}

// ----------------------------------------------------------------------------- apt configuration

const APT_DEFAULTS = [
  ['Dir', '/'],
  ['Dir::Etc', 'etc/apt/'],
  ['Dir::Etc::sourcelist', 'sources.list'],
  ['Dir::Etc::sourceparts', 'sources.list.d'],
  ['Dir::Etc::main', 'apt.conf'],
  ['Dir::Etc::parts', 'apt.conf.d'],
  ['Dir::Etc::preferences', 'preferences'],
  ['Dir::Etc::preferencesparts', 'preferences.d'],
  ['Dir::Etc::trusted', 'trusted.gpg'],
  ['Dir::Etc::trustedparts', 'trusted.gpg.d'],
  ['Dir::State', 'var/lib/apt/'],
  ['Dir::State::lists', 'lists/'],
  ['Dir::State::status', '/var/lib/dpkg/status'],
  ['Dir::Cache', 'var/cache/apt/'],
  ['Dir::Cache::archives', 'archives/'],
]

/** apt's configuration tree, as far as the simulation needs it; keys are case-insensitive. */
class AptConfig {
  constructor(ctx) {
    this.ctx = ctx
    this.values = new Map()
    for (const [k, v] of APT_DEFAULTS) this.set(k, v)
    this.set('Dir', ctx.root + '/')
    this.set('Dir::State::status', path.join(ctx.root, 'var/lib/dpkg/status'))
    this.set('APT::Architecture', DEB_ARCH[ctx.node.arch])
    this.set('APT::Architectures', DEB_ARCH[ctx.node.arch])
  }
  set(key, value) { this.values.set(key.toLowerCase(), {key, value}) }
  get(key) {
    const e = this.values.get(key.toLowerCase())
    return e ? e.value : ''
  }
  bool(key) { return /^(1|true|yes|on|with|enable)$/i.test(this.get(key)) }
  /** FindFile: a relative value is relative to its parent key's directory. */
  file(key) {
    const value = this.get(key)
    if (!value) return ''
    if (value.startsWith('/') || value.startsWith('./') || value.startsWith('../')) return value
    const parent = key.includes('::') ? key.slice(0, key.lastIndexOf('::')) : ''
    return parent ? this.dir(parent) + value : value
  }
  dir(key) {
    const f = this.file(key)
    return f && !f.endsWith('/') ? f + '/' : f
  }
  /** Default lists directory? (Real apt needs root for it.) */
  defaultLists() { return path.resolve(this.dir('Dir::State::lists')) === path.resolve(path.join(this.ctx.root, 'var/lib/apt/lists')) }
}

const APT_FLAGS = {
  '-y': 'APT::Get::Assume-Yes', '--yes': 'APT::Get::Assume-Yes', '--assume-yes': 'APT::Get::Assume-Yes',
  '-s': 'APT::Get::Simulate', '--simulate': 'APT::Get::Simulate', '--dry-run': 'APT::Get::Simulate', '--just-print': 'APT::Get::Simulate',
  '--recon': 'APT::Get::Simulate', '--no-act': 'APT::Get::Simulate',
  '--allow-downgrades': 'APT::Get::allow-downgrades', '--allow-change-held-packages': 'APT::Get::allow-change-held-packages',
  '--allow-remove-essential': 'APT::Get::allow-remove-essential', '--force-yes': 'APT::Get::force-yes',
  '--no-install-recommends': 'APT::Install-Recommends=false', '--install-recommends': 'APT::Install-Recommends',
  '--reinstall': 'APT::Get::ReInstall', '-f': 'APT::Get::Fix-Broken', '--fix-broken': 'APT::Get::Fix-Broken',
  '--no-download': 'APT::Get::Download', '-d': 'APT::Get::Download-Only', '--download-only': 'APT::Get::Download-Only',
  '--only-upgrade': 'APT::Get::Only-Upgrade', '-V': 'APT::Get::Show-Versions', '--verbose-versions': 'APT::Get::Show-Versions',
  '--print-uris': 'APT::Get::Print-URIs', '--purge': 'APT::Get::Purge', '-m': 'APT::Get::Fix-Missing', '--fix-missing': 'APT::Get::Fix-Missing',
}

/** apt's command line: -o/-c/-q and the flags above become config; returns the operands. */
function parseAptArgs(cfg, args) {
  const operands = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a === '--') { operands.push(...args.slice(i + 1)); break }
    if (a === '-o' || a === '--option') {
      const kv = args[++i]
      if (kv === undefined || !kv.includes('=')) return aptOptionError(`Option ${a}: Configuration item specification must have an =<val>.`)
      cfg.set(kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1))
      continue
    }
    if (/^-o./.test(a) || a.startsWith('--option=')) {
      const kv = a.startsWith('--option=') ? a.slice(9) : a.slice(2).replace(/^=/, '')
      if (!kv.includes('=')) return aptOptionError(`Option -o: Configuration item specification must have an =<val>.`)
      cfg.set(kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1))
      continue
    }
    if (a === '-c' || a === '--config-file') { i++; continue }
    if (a === '-q' || a === '--quiet' || a === '--silent') { cfg.set('quiet', String(Number(cfg.get('quiet') || 0) + 1)); continue }
    if (a === '-qq') { cfg.set('quiet', '2'); continue }
    if (a.startsWith('-q=') || a.startsWith('--quiet=')) { cfg.set('quiet', a.slice(a.indexOf('=') + 1)); continue }
    if (a === '-h' || a === '--help') { cfg.set('help', 'true'); continue }
    if (APT_FLAGS[a]) {
      const [key, value] = APT_FLAGS[a].split('=')
      cfg.set(key, value ?? 'true')
      continue
    }
    if (/^-[a-z]{2,}$/.test(a)) {
      // Bundled short flags: -qy, -sy.
      for (const letter of a.slice(1)) {
        if (letter === 'q') cfg.set('quiet', String(Number(cfg.get('quiet') || 0) + 1))
        else if (APT_FLAGS['-' + letter]) cfg.set(APT_FLAGS['-' + letter], 'true')
        else return aptOptionError(`Command line option '${letter}' [from ${a}] is not understood in combination with the other options.`)
      }
      continue
    }
    if (a.startsWith('-')) return aptOptionError(`Command line option ${a.replace(/=.*$/, '')} is not understood in combination with the other options`)
    operands.push(a)
  }
  return operands
}
function aptOptionError(message) {
  errw(`E: ${message}\n`)
  throw new Exit(100)
}

function aptConfigMain(ctx, args) {
  const cfg = new AptConfig(ctx)
  const ops = parseAptArgs(cfg, args)
  const cmd = ops.shift()
  const quote = (s) => `'${s.replace(/'/g, `'\\''`)}'`
  if (cmd === 'shell') {
    if (ops.length % 2 !== 0) {
      errw('E: Arguments not in pairs\n')
      throw new Exit(100)
    }
    for (let i = 0; i < ops.length; i += 2) {
      const variable = ops[i]
      const m = /^(.*?)(?:\/([fdbi]))?$/.exec(ops[i + 1])
      const key = m[1]
      let value
      if (m[2] === 'f') value = cfg.file(key)
      else if (m[2] === 'd') value = cfg.dir(key)
      else if (m[2] === 'b') value = cfg.bool(key) ? 'true' : 'false'
      else if (m[2] === 'i') value = String(parseInt(cfg.get(key) || '0', 10) || 0)
      else value = cfg.get(key)
      if (value) out(`${variable}=${quote(value)}\n`)
    }
    return
  }
  if (cmd === 'dump') {
    for (const {key, value} of cfg.values.values()) out(`${key} "${value}";\n`)
    return
  }
  errw(cmd ? `E: Invalid operation ${cmd}\n` : 'E: No operation specified\n')
  throw new Exit(100)
}

/** Every `deb` source the config names: one-line .list and deb822 .sources files. */
function aptSources(cfg) {
  const files = []
  const list = cfg.file('Dir::Etc::sourcelist')
  if (list && exists(list)) files.push(list)
  const parts = cfg.dir('Dir::Etc::sourceparts')
  if (parts && parts !== '-/' && exists(parts)) {
    for (const name of fs.readdirSync(parts).sort()) {
      if (/^[A-Za-z0-9_.-]+\.(list|sources)$/.test(name)) files.push(path.join(parts, name))
    }
  }
  const sources = []
  for (const file of files) {
    const text = readText(file) || ''
    if (file.endsWith('.sources')) {
      for (const s of parseDeb822(text)) {
        if (/^no$/i.test(s.enabled || '')) continue
        const types = (s.types || '').split(/\s+/).filter(Boolean)
        for (const type of types) {
          for (const uri of (s.uris || '').split(/\s+/).filter(Boolean)) {
            for (const suite of (s.suites || '').split(/\s+/).filter(Boolean)) {
              sources.push(aptSource(type, uri, suite, (s.components || '').split(/\s+/).filter(Boolean), file))
            }
          }
        }
      }
      continue
    }
    for (const raw of text.split('\n')) {
      const line = raw.replace(/#.*$/, '').trim()
      if (!line) continue
      const m = /^(\S+)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line)
      if (!m) {
        errw(`E: Malformed entry 1 in list file ${file} (Component)\nE: The list of sources could not be read.\n`)
        throw new Exit(100)
      }
      sources.push(aptSource(m[1], m[3], m[4], m[5].split(/\s+/).filter(Boolean), file))
    }
  }
  return sources.filter((s) => s.type === 'deb')
}

function aptSource(type, uri, suite, components, file) {
  const base = uri.endsWith('/') ? uri : uri + '/'
  const flat = suite.endsWith('/')
  const dist = flat ? (suite === '/' ? '' : suite) : ''
  const indexBase = flat ? base + dist : `${base}dists/${suite}/`
  const label = flat ? `${base.replace(/\/$/, '')} ${dist.replace(/\/$/, '')}` : `${base.replace(/\/$/, '')} ${suite}`
  return {type, uri: base, suite, components, flat, file, indexBase, label}
}

/** The Packages index files of a source for an architecture: {url, file (in the lists dir), label}. */
function aptIndexes(source, arch, listsDir) {
  if (source.flat) {
    return [{url: source.indexBase + 'Packages', file: path.join(listsDir, aptListFileName(source.indexBase) + 'Packages'), label: `${source.label} Packages`, meta: 'Packages'}]
  }
  return source.components.map((c) => {
    const base = `${source.indexBase}${c}/binary-${arch}/`
    return {url: base + 'Packages', file: path.join(listsDir, aptListFileName(base) + 'Packages'), label: `${source.label}/${c} ${arch} Packages`, meta: `${c}/binary-${arch}/Packages`}
  })
}

function aptLock(ctx, cfg, listsDir) {
  const lock = path.join(listsDir, 'lock')
  if (cfg.defaultLists() && !ctx.privileged) {
    errw(`E: Could not open lock file ${lock} - open (13: Permission denied)\nE: Unable to lock directory ${listsDir}\n`)
    throw new Exit(100)
  }
  try {
    fs.accessSync(listsDir, fs.constants.W_OK)
  } catch (e) {
    const why = e.code === 'ENOENT' ? '2: No such file or directory' : '13: Permission denied'
    errw(`E: Could not open lock file ${lock} - open (${why})\nE: Unable to lock directory ${listsDir}\n`)
    throw new Exit(100)
  }
  fs.writeFileSync(lock, '')
  fs.mkdirSync(path.join(listsDir, 'partial'), {recursive: true})
}

function releaseHashes(text) {
  const body = stripClearsign(text)
  const stanza = parseDeb822(body)[0] || {}
  const map = {}
  for (const line of (stanza.sha256 || '').split('\n')) {
    const [hash, size, name] = line.trim().split(/\s+/)
    if (name) map[name] = {hash, size: Number(size)}
  }
  return map
}
function stripClearsign(text) {
  const m = /-----BEGIN PGP SIGNED MESSAGE-----\n(?:[^\n]+\n)*\n([\s\S]*?)\n-----BEGIN PGP SIGNATURE-----/.exec(text)
  return m ? m[1] : text
}

/** apt's SizeToStr + "B": four significant digits, `3391 B`, `59.0 kB`, `12.2 MB`. */
function fmtBytes(n) {
  let size = n
  for (const unit of ['', 'k', 'M', 'G', 'T']) {
    if (size < 100 && unit !== '') return `${size.toFixed(1)} ${unit}B`
    if (size < 10000) return `${size.toFixed(0)} ${unit}B`
    size /= 1000
  }
  return `${size.toFixed(0)} PB`
}

/** apt-get update: InRelease (or Release) and Packages of every source into the lists directory. */
async function aptUpdate(ctx, cfg) {
  const listsDir = cfg.dir('Dir::State::lists').replace(/\/$/, '')
  aptLock(ctx, cfg, listsDir)
  const arch = cfg.get('APT::Architecture')
  const sources = aptSources(cfg)
  const keep = new Set(['lock', 'partial'])
  const errors = []
  const warnings = []
  let n = 0
  let fetched = 0
  const started = Date.now()
  for (const source of sources) {
    const metaName = aptListFileName(source.indexBase)
    let release = null
    n += 1
    const inReleaseFile = path.join(listsDir, metaName + 'InRelease')
    try {
      let res = await httpGet(source.indexBase + 'InRelease')
      let kind = 'InRelease'
      if (res.status === 404) {
        out(`Ign:${n} ${source.label} InRelease\n`)
        n += 1
        res = await httpGet(source.indexBase + 'Release')
        kind = 'Release'
      }
      if (res.status !== 200) {
        out(`Err:${n} ${source.label} ${kind}\n  ${res.status}  ${res.statusText} [IP: ${res.host} ${res.port}]\n`)
        errors.push(`E: The repository '${source.label} Release' does not have a Release file.`)
        errors.push("N: Updating from such a repository can't be done securely, and is therefore disabled by default.")
        errors.push('N: See apt-secure(8) manpage for repository creation and user configuration details.')
        continue
      }
      const text = res.body.toString('utf8')
      const file = path.join(listsDir, metaName + kind)
      if (readText(file) === text) out(`Hit:${n} ${source.label} ${kind}\n`)
      else {
        out(`Get:${n} ${source.label} ${kind} [${fmtBytes(res.body.length)}]\n`)
        fs.writeFileSync(file, text)
        fetched += res.body.length
      }
      keep.add(path.basename(file))
      if (kind === 'Release') fs.rmSync(inReleaseFile, {force: true})
      release = releaseHashes(text)
    } catch (e) {
      if (!e.net) throw e
      out(`Err:${n} ${source.label} InRelease\n  ${e.message}\n`)
      warnings.push(`W: Failed to fetch ${source.indexBase}InRelease  ${e.message}`)
      for (const idx of aptIndexes(source, arch, listsDir)) keep.add(path.basename(idx.file))
      continue
    }
    for (const idx of aptIndexes(source, arch, listsDir)) {
      keep.add(path.basename(idx.file))
      const expected = release[idx.meta]
      const current = readText(idx.file)
      if (expected && current !== null && sha256(Buffer.from(current)) === expected.hash) continue
      n += 1
      // apt prefers a compressed index the Release lists; the list file holds it uncompressed.
      const gz = release[idx.meta + '.gz']
      const url = gz ? idx.url + '.gz' : idx.url
      try {
        const res = await httpGet(url)
        if (res.status !== 200) {
          out(`Err:${n} ${idx.label}\n  ${res.status}  ${res.statusText} [IP: ${res.host} ${res.port}]\n`)
          errors.push(`E: Failed to fetch ${url}  ${res.status}  ${res.statusText} [IP: ${res.host} ${res.port}]`)
          continue
        }
        const body = gz ? zlib.gunzipSync(res.body) : res.body
        if ((gz && sha256(res.body) !== gz.hash) || (expected && sha256(body) !== expected.hash)) {
          out(`Err:${n} ${idx.label}\n  Hash Sum mismatch\n`)
          errors.push(`E: Failed to fetch ${url}  Hash Sum mismatch`)
          continue
        }
        out(`Get:${n} ${idx.label} [${fmtBytes(res.body.length)}]\n`)
        fs.writeFileSync(idx.file, body)
        fetched += res.body.length
      } catch (e) {
        if (!e.net) throw e
        out(`Err:${n} ${idx.label}\n  ${e.message}\n`)
        warnings.push(`W: Failed to fetch ${idx.url}  ${e.message}`)
      }
    }
  }
  if (fetched > 0) {
    const secs = Math.max(1, Date.now() - started) / 1000
    out(`Fetched ${fmtBytes(fetched)} in ${Math.round(secs)}s (${fmtBytes(Math.round(fetched / secs))}/s)\n`)
  }
  out('Reading package lists...\n')
  // List-Cleanup: indexes of sources no longer configured go, unless something failed.
  if (errors.length === 0 && warnings.length === 0 && cfg.get('APT::Get::List-Cleanup') !== 'false' && cfg.get('APT::Get::List-Cleanup') !== '0') {
    for (const name of fs.readdirSync(listsDir)) {
      if (!keep.has(name) && /_(InRelease|Release|Release\.gpg|Packages)$/.test(name)) fs.rmSync(path.join(listsDir, name), {force: true})
    }
  }
  if (warnings.length) warnings.push('W: Some index files failed to download. They have been ignored, or old ones used instead.')
  if (errors.length || warnings.length) errw([...errors, ...warnings].join('\n') + '\n')
  if (errors.some((e) => e.startsWith('E:'))) throw new Exit(100)
}

/** Every version the lists offer, per package: [{version, arch, filename, sha256, size, source, label}]. */
function aptAvailable(cfg) {
  const listsDir = cfg.dir('Dir::State::lists').replace(/\/$/, '')
  const arch = cfg.get('APT::Architecture')
  const available = new Map()
  for (const source of aptSources(cfg)) {
    for (const idx of aptIndexes(source, arch, listsDir)) {
      const text = readText(idx.file)
      if (text === null) continue
      for (const s of parseDeb822(text)) {
        if (!s.package || !s.version) continue
        if (s.architecture !== arch && s.architecture !== 'all') continue
        const list = available.get(s.package) || []
        if (list.some((v) => v.version === s.version)) continue
        list.push({name: s.package, version: s.version, arch: s.architecture, filename: s.filename, sha256: s.sha256, size: Number(s.size || 0), source, label: idx.label})
        available.set(s.package, list)
      }
    }
  }
  for (const list of available.values()) list.sort((a, b) => compareDeb(b.version, a.version))
  return available
}

function aptCacheMain(ctx, args) {
  const cfg = new AptConfig(ctx)
  const ops = parseAptArgs(cfg, args)
  const cmd = ops.shift()
  const available = aptAvailable(cfg)
  const db = packageDb(ctx)
  if (cmd === 'madison') {
    // apt-cache.cc Madison: setw(10) name | setw(10) version | index description; nothing for an unknown name.
    for (const name of ops) {
      for (const v of available.get(name) || []) out(`${name.padStart(10)} | ${v.version.padStart(10)} | ${v.label}\n`)
    }
    return
  }
  if (cmd === 'policy') {
    if (ops.length === 0) {
      out('Package files:\n 100 /var/lib/dpkg/status\n     release a=now\n')
      const seen = new Set()
      for (const list of available.values()) {
        for (const v of list) {
          if (seen.has(v.label)) continue
          seen.add(v.label)
          out(` 500 ${v.label}\n     release o=obs://build.opensuse.org/${v.source.uri},n=,c=\n     origin ${new URL(v.source.uri).host}\n`)
        }
      }
      out('Pinned packages:\n')
      return
    }
    for (const name of ops) {
      const versions = available.get(name) || []
      const installed = db[name]
      if (!versions.length && !installed) {
        errw(`N: Unable to locate package ${name}\n`)
        continue
      }
      const all = [...versions.map((v) => v.version)]
      if (installed && !all.includes(installed.version)) all.push(installed.version)
      all.sort((a, b) => compareDeb(b, a))
      out(`${name}:\n  Installed: ${installed ? installed.version : '(none)'}\n  Candidate: ${versions[0] ? versions[0].version : installed ? installed.version : '(none)'}\n  Version table:\n`)
      for (const version of all) {
        const mark = installed && installed.version === version ? '***' : '   '
        out(` ${mark} ${version} ${installed && installed.version === version && !versions.some((v) => v.version === version) ? 100 : 500}\n`)
        for (const v of versions.filter((x) => x.version === version)) out(`        500 ${v.label}\n`)
        if (installed && installed.version === version) out('        100 /var/lib/dpkg/status\n')
      }
    }
    return
  }
  if (cmd === 'show') {
    for (const name of ops) {
      const versions = available.get(name)
      if (!versions) {
        errw(`N: Unable to locate package ${name}\nE: No packages found\n`)
        throw new Exit(100)
      }
      for (const v of versions) out(`Package: ${name}\nVersion: ${v.version}\nArchitecture: ${v.arch}\nFilename: ${v.filename}\nSize: ${v.size}\nSHA256: ${v.sha256}\n\n`)
    }
    return
  }
  errw(cmd ? `E: Invalid operation ${cmd}\n` : 'E: No operation specified\n')
  throw new Exit(100)
}

function aptMarkMain(ctx, args) {
  const cfg = new AptConfig(ctx)
  const ops = parseAptArgs(cfg, args)
  const cmd = ops.shift()
  const db = packageDb(ctx)
  if (cmd === 'showhold' || cmd === 'showheld') {
    const names = Object.keys(db).filter((n) => db[n].hold && (ops.length === 0 || ops.includes(n))).sort()
    for (const n of names) out(`${n}\n`)
    return
  }
  if (cmd === 'hold' || cmd === 'unhold') {
    if (ops.length === 0) {
      errw('E: No packages found\n')
      throw new Exit(100)
    }
    const available = aptAvailable(cfg)
    for (const name of ops) {
      if (!db[name] && !available.has(name)) {
        errw(`E: Unable to locate package ${name}\n`)
        throw new Exit(100)
      }
    }
    if (!ctx.privileged) {
      errw('dpkg: error: requested operation requires superuser privilege\nE: Executing dpkg failed. Are you root?\n')
      throw new Exit(100)
    }
    for (const name of ops) {
      const entry = db[name]
      const held = Boolean(entry && entry.hold)
      if (cmd === 'hold') out(held ? `${name} was already set on hold.\n` : `${name} set on hold.\n`)
      else out(held ? `Canceled hold on ${name}.\n` : `${name} was already not on hold.\n`)
      if (entry) entry.hold = cmd === 'hold'
    }
    savePackageDb(ctx, db)
    return
  }
  if (cmd === 'showmanual' || cmd === 'showauto') {
    for (const n of Object.keys(db).sort()) if ((cmd === 'showmanual') === CORE_PACKAGES.includes(n)) out(`${n}\n`)
    return
  }
  errw(cmd ? `E: Invalid operation ${cmd}\n` : 'E: No operation specified\n')
  throw new Exit(100)
}

function wrapNames(names) {
  const lines = []
  let line = ' '
  for (const n of names) {
    if (line.length + n.length + 1 > 79 && line.trim()) {
      lines.push(line)
      line = ' '
    }
    line += ' ' + n
  }
  lines.push(line)
  return lines.join('\n') + '\n'
}

/** The install failure the knobs ask for on this node: {stage: 'download'|'configure'} or undefined. */
function installFailure(ctx, name) {
  const f = (ctx.knobs.installFailures || {})[name]
  return f ? {stage: f.stage || 'configure', message: f.message} : undefined
}

async function aptGetMain(ctx, args) {
  const cfg = new AptConfig(ctx)
  const ops = parseAptArgs(cfg, args)
  const cmd = ops.shift()
  if (cfg.bool('help') || !cmd) {
    out('apt 2.6.1 (amd64)\nUsage: apt-get [options] command\n       apt-get [options] install|remove pkg1 [pkg2 ...]\n(homelab simulation: update, install)\n')
    if (!cmd && !cfg.bool('help')) throw new Exit(100)
    return
  }
  if (cmd === 'update') return aptUpdate(ctx, cfg)
  if (cmd === 'install') return aptInstall(ctx, cfg, ops)
  errw(`E: Invalid operation ${cmd}\n`)
  throw new Exit(100)
}

async function aptInstall(ctx, cfg, operands) {
  const simulate = cfg.bool('APT::Get::Simulate')
  if (!simulate && !ctx.privileged) {
    errw('E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\n' +
      'E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?\n')
    throw new Exit(100)
  }
  if (simulate && !ctx.privileged) {
    out('NOTE: This is only a simulation!\n      apt-get needs root privileges for real execution.\n' +
      '      Keep also in mind that locking is deactivated,\n      so don\'t depend on the relevance to the real current situation!\n')
  }
  out('Reading package lists...\nBuilding dependency tree...\nReading state information...\n')
  const available = aptAvailable(cfg)
  const db = packageDb(ctx)
  const errors = []
  const plan = []
  for (const op of operands) {
    const eq = op.indexOf('=')
    const name = eq === -1 ? op : op.slice(0, eq)
    const spec = eq === -1 ? '' : op.slice(eq + 1)
    const versions = available.get(name) || []
    const installed = db[name]
    if (!versions.length && !installed) {
      errors.push(`E: Unable to locate package ${name}`)
      continue
    }
    let cand
    if (spec) {
      const re = globToRegExp(spec)
      cand = versions.find((v) => v.version === spec) || versions.find((v) => re.test(v.version))
      if (!cand) {
        errors.push(`E: Version '${spec}' for '${name}' was not found`)
        continue
      }
    } else cand = versions[0]
    if (!cand || (installed && installed.version === cand.version && installed.status === 'installed')) {
      out(`${name} is already the newest version (${installed.version}).\n`)
      continue
    }
    const cmp = installed ? compareDeb(cand.version, installed.version) : 1
    plan.push({name, cand, installed, kind: !installed ? 'new' : cmp > 0 ? 'upgrade' : cmp < 0 ? 'downgrade' : 'reinstall'})
  }
  if (errors.length) {
    errw(errors.join('\n') + '\n')
    throw new Exit(100)
  }
  const of = (kind) => plan.filter((p) => p.kind === kind).map((p) => p.name)
  const held = plan.filter((p) => p.installed && p.installed.hold).map((p) => p.name)
  if (of('new').length) out('The following NEW packages will be installed:\n' + wrapNames(of('new')))
  if (held.length) out('The following held packages will be changed:\n' + wrapNames(held))
  if (of('upgrade').length) out('The following packages will be upgraded:\n' + wrapNames(of('upgrade')))
  if (of('downgrade').length) out('The following packages will be DOWNGRADED:\n' + wrapNames(of('downgrade')))
  const notUpgraded = Object.keys(db).filter((n) => !plan.some((p) => p.name === n) && available.get(n) && compareDeb(available.get(n)[0].version, db[n].version) > 0).length
  out(`${of('upgrade').length} upgraded, ${of('new').length} newly installed, ` +
    (of('downgrade').length ? `${of('downgrade').length} downgraded, ` : '') +
    (of('reinstall').length ? `${of('reinstall').length} reinstalled, ` : '') +
    `0 to remove and ${notUpgraded} not upgraded.\n`)
  if (plan.length === 0) return
  // apt-private/private-install.cc: the fail-safe checks when -y answers for the user.
  if (cfg.bool('APT::Get::Assume-Yes') || Number(cfg.get('quiet') || 0) >= 2) {
    if (!cfg.bool('APT::Get::force-yes')) {
      if (of('downgrade').length && !cfg.bool('APT::Get::allow-downgrades')) {
        errw('E: Packages were downgraded and -y was used without --allow-downgrades.\n')
        throw new Exit(100)
      }
      if (held.length && !cfg.bool('APT::Get::allow-change-held-packages')) {
        errw('E: Held packages were changed and -y was used without --allow-change-held-packages.\n')
        throw new Exit(100)
      }
    }
  }
  if (simulate) {
    for (const p of plan) out(`Inst ${p.name}${p.installed ? ` [${p.installed.version}]` : ''} (${p.cand.version} ${aptOrigin(p.cand)} [${p.cand.arch}])\n`)
    for (const p of plan) out(`Conf ${p.name} (${p.cand.version} ${aptOrigin(p.cand)} [${p.cand.arch}])\n`)
    return
  }
  const total = plan.reduce((s, p) => s + p.cand.size, 0)
  out(`Need to get ${fmtBytes(total)} of archives.\nAfter this operation, 0 B of additional disk space will be used.\n`)
  if (!cfg.bool('APT::Get::Assume-Yes')) {
    out('Do you want to continue? [Y/n] ')
    let answer = ''
    try {
      answer = fs.readFileSync(0, 'utf8')
    } catch {}
    // An empty line is yes; no answer at all (end of input) is not.
    if (answer === '' || !/^(y|yes|)$/i.test(answer.split('\n')[0].trim())) {
      out('Abort.\n')
      throw new Exit(1)
    }
  }
  // Download every archive first, as apt does; a failure changes nothing.
  const archives = []
  const fetchErrors = []
  let n = 0
  for (const p of plan) {
    n += 1
    const url = p.cand.source.uri + p.cand.filename
    const desc = `${p.cand.source.label.replace(/ $/, ' ')} ${p.name} ${p.cand.version}`
    const failure = installFailure(ctx, p.name)
    try {
      const res = failure && failure.stage === 'download' ? {status: 404, statusText: 'Not Found', host: new URL(url).hostname, port: new URL(url).port} : await httpGet(url)
      if (res.status !== 200) {
        out(`Err:${n} ${desc}\n  ${res.status}  ${res.statusText} [IP: ${res.host} ${res.port}]\n`)
        fetchErrors.push(`E: Failed to fetch ${url}  ${res.status}  ${res.statusText} [IP: ${res.host} ${res.port}]`)
        continue
      }
      const got = sha256(res.body)
      if (p.cand.sha256 && got !== p.cand.sha256) {
        fetchErrors.push(`E: Failed to fetch ${url}  Hash Sum mismatch\n   Hashes of expected file:\n    - SHA256:${p.cand.sha256}\n   Hashes of received file:\n    - SHA256:${got}`)
        continue
      }
      out(`Get:${n} ${desc} [${fmtBytes(res.body.length)}]\n`)
      archives.push(p)
    } catch (e) {
      if (!e.net) throw e
      out(`Err:${n} ${desc}\n  ${e.message}\n`)
      fetchErrors.push(`E: Failed to fetch ${url}  ${e.message}`)
    }
  }
  if (fetchErrors.length) {
    errw(fetchErrors.join('\n') + '\nE: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?\n')
    throw new Exit(100)
  }
  out(`Fetched ${fmtBytes(total)} in 0s (${fmtBytes(total)}/s)\n`)
  out(`(Reading database ... ${4000 + Object.keys(db).length * 12} files and directories currently installed.)\n`)
  for (const p of plan) {
    const deb = `${p.name}_${p.cand.version}_${p.cand.arch}.deb`
    if (!p.installed) out(`Selecting previously unselected package ${p.name}.\n`)
    if (p.kind === 'downgrade') errw(`dpkg: warning: downgrading ${p.name} from ${p.installed.version} to ${p.cand.version}\n`)
    out(`Preparing to unpack .../${deb} ...\n`)
    out(p.installed ? `Unpacking ${p.name} (${p.cand.version}) over (${p.installed.version}) ...\n` : `Unpacking ${p.name} (${p.cand.version}) ...\n`)
    installPayload(ctx, p.name, p.cand.version)
    db[p.name] = {version: p.cand.version, arch: p.cand.arch, hold: Boolean(p.installed && p.installed.hold), status: 'half-configured'}
  }
  savePackageDb(ctx, db)
  const failed = []
  for (const p of plan) {
    out(`Setting up ${p.name} (${p.cand.version}) ...\n`)
    const failure = installFailure(ctx, p.name)
    if (failure && failure.stage === 'configure') {
      errw(`dpkg: error processing package ${p.name} (--configure):\n installed ${p.name} package post-installation script subprocess returned error exit status 1\n`)
      failed.push(p.name)
      continue
    }
    db[p.name].status = 'installed'
  }
  savePackageDb(ctx, db)
  if (failed.length) {
    errw(`Errors were encountered while processing:\n${failed.map((f) => ` ${f}\n`).join('')}E: Sub-process /usr/bin/dpkg returned an error code (1)\n`)
    throw new Exit(100)
  }
}

/** What `apt-get -s` names a version's origin by: the Release's Label and the site, as apt 2.6 prints it. */
function aptOrigin(v) {
  const m = /\/core:\/stable:\/(v\d+\.\d+)\//.exec(v.source.uri)
  const site = new URL(v.source.uri).hostname
  return m ? `isv:kubernetes:core:stable:${m[1]}:${site}` : site
}

// ----------------------------------------------------------------------------- dpkg, dpkg-query

const DPKG_STATUS = {installed: ['install ok installed', 'ii '], 'half-configured': ['install ok half-configured', 'iF ']}

function dpkgStatus(entry) {
  const [status, abbrev] = DPKG_STATUS[entry.status] || DPKG_STATUS.installed
  return entry.hold ? [status.replace(/^install/, 'hold'), 'h' + abbrev.slice(1)] : [status, abbrev]
}

function dpkgFormat(fmt, name, entry) {
  const [status, abbrev] = dpkgStatus(entry)
  const fields = {
    Package: name, 'binary:Package': name, Version: entry.version, Architecture: entry.arch, Status: status,
    'db:Status-Abbrev': abbrev, 'db:Status-Want': entry.hold ? 'hold' : 'install', 'db:Status-Status': entry.status || 'installed',
    Maintainer: 'Kubernetes Authors <dev@kubernetes.io>', Section: 'admin', Priority: 'optional',
  }
  return fmt
    .replace(/\$\{([^};]+)(?:;(-?\d+))?\}/g, (_, f, w) => {
      const v = fields[f] ?? ''
      if (!w) return v
      return Number(w) < 0 ? v.padEnd(-Number(w)) : v.padStart(Number(w))
    })
    .replace(/\\n/g, '\n')
    .replace(/\\t/g, '\t')
}

function dpkgMain(ctx, tool, args) {
  const db = packageDb(ctx)
  const a0 = args[0]
  if (tool === 'dpkg' && a0 === '--print-architecture') {
    out(`${DEB_ARCH[ctx.node.arch]}\n`)
    return
  }
  if (a0 === '-W' || a0 === '--show' || a0 === '-f' || a0 === '--showformat' || (a0 && (a0.startsWith('-f') || a0.startsWith('--showformat=')))) {
    let fmt = '${binary:Package}\t${Version}\n'
    const names = []
    for (let i = 0; i < args.length; i++) {
      const a = args[i]
      if (a === '-W' || a === '--show') continue
      if (a === '-f' || a === '--showformat') fmt = args[++i] || ''
      else if (a.startsWith('--showformat=')) fmt = a.slice(13)
      else if (a.startsWith('-f')) fmt = a.slice(2).replace(/^=/, '') // dpkg takes -f=FMT as -f FMT
      else names.push(a)
    }
    const patterns = names.length ? names : ['*']
    let rc = 0
    for (const p of patterns) {
      const re = globToRegExp(p)
      const hits = Object.keys(db).filter((n) => re.test(n)).sort()
      if (!hits.length) {
        errw(`dpkg-query: no packages found matching ${p}\n`)
        rc = 1
      }
      for (const n of hits) out(dpkgFormat(fmt, n, db[n]))
    }
    if (rc) throw new Exit(rc)
    return
  }
  if (a0 === '-s' || a0 === '--status') {
    let rc = 0
    for (const n of args.slice(1)) {
      const e = db[n]
      if (!e) {
        errw(`dpkg-query: package '${n}' is not installed and no information is available\n`)
        rc = 1
        continue
      }
      out(dpkgFormat('Package: ${Package}\nStatus: ${Status}\nPriority: optional\nSection: admin\nMaintainer: Kubernetes Authors <dev@kubernetes.io>\nArchitecture: ${Architecture}\nVersion: ${Version}\n', n, e))
      out(`Description: ${n} (homelab simulation)\n\n`)
    }
    if (rc) {
      errw('Use dpkg --info (= dpkg-deb --info) to examine archive files.\n')
      throw new Exit(1)
    }
    return
  }
  if (a0 === '-l' || a0 === '--list') {
    out('Desired=Unknown/Install/Remove/Purge/Hold\n| Status=Not/Inst/Conf-files/Unpacked/halF-conf/Half-inst/trig-aWait/Trig-pend\n|/ Err?=(none)/Reinst-required (Status,Err: uppercase=bad)\n||/ Name           Version           Architecture Description\n+++-==============-=================-============-=================================\n')
    const patterns = args.slice(1).length ? args.slice(1) : ['*']
    for (const n of Object.keys(db).sort()) {
      if (!patterns.some((p) => globToRegExp(p).test(n))) continue
      out(`${dpkgStatus(db[n])[1].trim().padEnd(3)} ${n.padEnd(14)} ${db[n].version.padEnd(17)} ${db[n].arch.padEnd(12)} ${n}\n`)
    }
    return
  }
  if (a0 === '-S' || a0 === '--search') {
    let rc = 0
    for (const p of args.slice(1)) {
      const owner = fileOwner(ctx, p, db)
      if (owner) out(`${owner}: ${p}\n`)
      else {
        errw(`dpkg-query: no path found matching pattern ${p}\n`)
        rc = 1
      }
    }
    if (rc) throw new Exit(1)
    return
  }
  if (tool === 'dpkg' && a0 === '--get-selections') {
    for (const n of Object.keys(db).sort()) out(`${n.padEnd(48)}${db[n].hold ? 'hold' : 'install'}\n`)
    return
  }
  errw(`${tool}: error: need an action option\n\nType ${tool} --help for help about installing and deinstalling packages [*];\n`)
  throw new Exit(2)
}

/** Which package installed this file (the binaries in the node's bin dir). */
function fileOwner(ctx, file, db) {
  const base = path.basename(file)
  if (path.resolve(path.dirname(file)) !== path.resolve(ctx.node.binDir)) return undefined
  const pkg = base === 'crictl' ? 'cri-tools' : base
  return db[pkg] ? pkg : undefined
}

// ----------------------------------------------------------------------------- rpm

function rpmNevra(name, e) { return `${name}-${e.version}.${e.arch}` }

function rpmMain(ctx, args) {
  const db = packageDb(ctx)
  let query = false
  let all = false
  let byFile = false
  let qf = null
  const ops = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a === '--version') {
      out('RPM version 4.16.1.3\n')
      return
    }
    if (a === '-q' || a === '--query') query = true
    else if (a === '-qa') { query = true; all = true }
    else if (a === '-a' || a === '--all') all = true
    else if (a === '-qf' || a === '-fq') { query = true; byFile = true }
    else if (a === '-f' || a === '--file') byFile = true
    else if (a === '--qf' || a === '--queryformat') qf = args[++i]
    else if (a.startsWith('--qf=') || a.startsWith('--queryformat=')) qf = a.slice(a.indexOf('=') + 1)
    else if (a === '--quiet' || a === '--nosignature' || a === '--nodigest') continue
    else if (a.startsWith('-')) {
      errw(`rpm: ${a}: unknown option\n`)
      throw new Exit(1)
    } else ops.push(a)
  }
  if (!query) {
    errw('rpm: homelab simulation: only queries (-q, -qa, -qf) are simulated\n')
    throw new Exit(1)
  }
  const print = (name) => {
    const e = db[name]
    const [version, release] = [e.version.replace(/-[^-]*$/, ''), e.version.replace(/^.*-/, '')]
    if (qf === null) {
      out(`${rpmNevra(name, e)}\n`)
      return
    }
    const tags = {NAME: name, VERSION: version, RELEASE: release, ARCH: e.arch, EPOCH: '(none)', NEVRA: rpmNevra(name, e), NVRA: rpmNevra(name, e), NVR: `${name}-${e.version}`, EVR: e.version}
    out(qf.replace(/%\{([A-Z]+)\}/g, (_, t) => tags[t] ?? '(none)').replace(/\\n/g, '\n').replace(/\\t/g, '\t'))
  }
  if (all) {
    for (const n of Object.keys(db).sort()) print(n)
    return
  }
  if (!ops.length) {
    errw('rpm: no arguments given for query\n')
    throw new Exit(1)
  }
  let rc = 0
  for (const op of ops) {
    if (byFile) {
      const owner = fileOwner(ctx, op, db)
      if (owner) print(owner)
      else if (exists(op)) { out(`file ${op} is not owned by any package\n`); rc = 1 }
      else { errw(`error: file ${op}: No such file or directory\n`); rc = 1 }
      continue
    }
    const name = Object.keys(db).find((n) => op === n || op === `${n}-${db[n].version}` || op === rpmNevra(n, db[n]) || op === `${n}-${db[n].version.replace(/-[^-]*$/, '')}`)
    if (name) print(name)
    else {
      out(`package ${op} is not installed\n`)
      rc = 1
    }
  }
  if (rc) throw new Exit(rc)
}

// ----------------------------------------------------------------------------- dnf

/** INI sections of every *.repo file in the repos dirs: [{id, name, baseurl, enabled, exclude, file, ...}]. */
function dnfRepos(dirs) {
  const repos = []
  for (const dir of dirs) {
    if (!exists(dir)) continue
    for (const name of fs.readdirSync(dir).sort()) {
      if (!name.endsWith('.repo')) continue
      const file = path.join(dir, name)
      let current = null
      for (const raw of (readText(file) || '').split('\n')) {
        const line = raw.trim()
        if (!line || line.startsWith('#') || line.startsWith(';')) continue
        const section = /^\[(.+)\]$/.exec(line)
        if (section) {
          current = {id: section[1], file, keys: {}}
          repos.push(current)
          continue
        }
        const eq = line.indexOf('=')
        if (current && eq > 0) current.keys[line.slice(0, eq).trim().toLowerCase()] = line.slice(eq + 1).trim()
      }
    }
  }
  return repos.map((r) => ({
    id: r.id,
    file: r.file,
    name: r.keys.name || r.id,
    baseurl: (r.keys.baseurl || '').split(/[\s,]+/)[0] || '',
    enabled: !/^(0|false|no)$/i.test(r.keys.enabled || '1'),
    gpgcheck: !/^(0|false|no)$/i.test(r.keys.gpgcheck || '0'),
    exclude: (r.keys.exclude || r.keys.excludepkgs || '').split(/[\s,]+/).filter(Boolean),
    expire: parseExpire(r.keys.metadata_expire),
    keys: r.keys,
  }))
}

function parseExpire(v) {
  if (v === undefined || v === '') return 172800
  if (/^(-1|never)$/.test(v)) return Infinity
  const m = /^(\d+)([smhd]?)$/.exec(v)
  if (!m) return 172800
  return Number(m[1]) * {'': 1, s: 1, m: 60, h: 3600, d: 86400}[m[2]]
}

function parseDnfArgs(ctx, args) {
  const o = {ops: [], setopt: {}, yes: false, quiet: false, verbose: false, refresh: false, cacheonly: false, showduplicates: false, disableexcludes: [], disablerepo: [], enablerepo: [], repo: [], list: 'all', repolist: 'enabled'}
  const takes = new Set(['--disableexcludes', '--disablerepo', '--enablerepo', '--repo', '--repoid', '--setopt', '--releasever', '-x', '--exclude', '--installroot', '-c', '--config', '-d', '--debuglevel', '-e', '--errorlevel'])
  for (let i = 0; i < args.length; i++) {
    let a = args[i]
    let value
    if (a.startsWith('--') && a.includes('=')) {
      value = a.slice(a.indexOf('=') + 1)
      a = a.slice(0, a.indexOf('='))
    } else if (takes.has(a)) value = args[++i]
    switch (a) {
      case '-y': case '--assumeyes': o.yes = true; break
      case '-q': case '--quiet': o.quiet = true; break
      case '-v': case '--verbose': o.verbose = true; break
      case '--refresh': o.refresh = true; break
      case '-C': case '--cacheonly': o.cacheonly = true; break
      case '--showduplicates': o.showduplicates = true; break
      case '--disableexcludes': case '--disableexcludepkgs': o.disableexcludes.push(...String(value).split(',')); break
      case '--disablerepo': o.disablerepo.push(...String(value).split(',')); break
      case '--enablerepo': o.enablerepo.push(...String(value).split(',')); break
      case '--repo': case '--repoid': o.repo.push(...String(value).split(',')); break
      case '--setopt': {
        const kv = String(value)
        const eq = kv.indexOf('=')
        if (eq <= 0) return dnfUsage(`argument --setopt: Setopt argument has no value: ${kv}`)
        o.setopt[kv.slice(0, eq)] = kv.slice(eq + 1)
        break
      }
      case '--installed': o.list = 'installed'; break
      case '--available': o.list = 'available'; break
      case '--all': o.list = 'all'; o.repolist = 'all'; break
      case '--enabled': o.repolist = 'enabled'; break
      case '--disabled': o.repolist = 'disabled'; break
      case '--nogpgcheck': case '--allowerasing': case '--best': case '--nobest': case '--noplugins': case '--skip-broken':
      case '--releasever': case '-x': case '--exclude': case '--installroot': case '-c': case '--config': case '-d': case '--debuglevel':
      case '-e': case '--errorlevel': case '--color': case '--nodocs':
        break
      default:
        if (a.startsWith('-')) return dnfUsage(`unrecognized arguments: ${args[i]}`)
        o.ops.push(a)
    }
  }
  const rootDefault = ctx.privileged ? path.join(ctx.root, 'var/cache/dnf') : path.join(ctx.root, `var/tmp/dnf-${ctx.user}-sim`)
  o.cachedir = o.setopt.cachedir || rootDefault
  o.reposdirs = (o.setopt.reposdir || path.join(ctx.root, 'etc/yum.repos.d')).split(/[\s,]+/).filter(Boolean)
  return o
}
function dnfUsage(message) {
  errw(`usage: dnf [options] COMMAND\ndnf: error: ${message}\n`)
  throw new Exit(2)
}

function dnfSelectRepos(o) {
  return dnfRepos(o.reposdirs).filter((r) => {
    if (o.repo.length) return o.repo.some((p) => globToRegExp(p).test(r.id))
    if (o.enablerepo.some((p) => globToRegExp(p).test(r.id))) return true
    if (o.disablerepo.some((p) => globToRegExp(p).test(r.id))) return false
    return r.enabled
  })
}

function fmtDnfDate(d) {
  const day = d.toLocaleString('en-US', {weekday: 'short', timeZone: 'UTC'})
  const mon = d.toLocaleString('en-US', {month: 'short', timeZone: 'UTC'})
  const h = d.getUTCHours()
  const hh = String(h % 12 === 0 ? 12 : h % 12).padStart(2, '0')
  const pad = (n) => String(n).padStart(2, '0')
  return `${day} ${pad(d.getUTCDate())} ${mon} ${d.getUTCFullYear()} ${hh}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${h < 12 ? 'AM' : 'PM'} UTC`
}

/** Parses our own primary.xml (a real-shaped one) into packages. */
function parsePrimary(xml, repo) {
  const pkgs = []
  const re = /<package type="rpm">([\s\S]*?)<\/package>/g
  let m
  while ((m = re.exec(xml))) {
    const body = m[1]
    const tag = (t) => (new RegExp(`<${t}>([^<]*)</${t}>`).exec(body) || [])[1]
    const ver = /<version epoch="(\d+)" ver="([^"]+)" rel="([^"]+)"\/>/.exec(body)
    const sum = /<checksum type="sha256" pkgid="YES">([0-9a-f]+)<\/checksum>/.exec(body)
    const loc = /<location href="([^"]+)"\/>/.exec(body)
    const size = /<size package="(\d+)"/.exec(body)
    pkgs.push({name: tag('name'), arch: tag('arch'), epoch: ver[1], version: ver[2], release: ver[3], sha256: sum && sum[1], href: loc && loc[1], size: size ? Number(size[1]) : 0, repo: repo.id})
  }
  return pkgs
}

/** The repo's packages: from the cache while fresh, else fetched (repomd.xml, then primary). */
async function dnfLoadRepo(o, repo) {
  const dir = path.join(o.cachedir, `${repo.id}-${sha256(repo.baseurl).slice(0, 16)}`)
  const cacheFile = path.join(dir, 'repodata', 'sim-primary.json')
  const cached = readJson(cacheFile, null)
  const age = cached ? (Date.now() - cached.fetched) / 1000 : Infinity
  if (cached && (o.cacheonly || (!o.refresh && age < repo.expire))) return {...cached, fromCache: true}
  if (o.cacheonly) throw Object.assign(new Error(`Cache-only enabled but no cache for '${repo.id}'`), {dnf: true})
  const base = repo.baseurl.endsWith('/') ? repo.baseurl : repo.baseurl + '/'
  const fail = (detail) => {
    if (!o.quiet) out(`${repo.name.padEnd(48)} 0.0  B/s |   0  B     00:00\n`)
    errw(`Errors during downloading metadata for repository '${repo.id}':\n  - ${detail}\n` +
      `Error: Failed to download metadata for repo '${repo.id}': Cannot download repomd.xml: Cannot download repodata/repomd.xml: All mirrors were tried\n`)
    throw Object.assign(new Error('metadata'), {dnf: true, reported: true})
  }
  let repomd
  try {
    repomd = await httpGet(base + 'repodata/repomd.xml')
  } catch (e) {
    if (!e.net) throw e
    const curl = e.net === 'resolve' ? `Curl error (6): Couldn't resolve host name for ${base}repodata/repomd.xml [Could not resolve host: ${e.host}]`
      : e.net === 'refused' ? `Curl error (7): Couldn't connect to server for ${base}repodata/repomd.xml [Failed to connect to ${e.host} port ${e.port}: Connection refused]`
        : `Curl error (56): Failure when receiving data from the peer for ${base}repodata/repomd.xml [Recv failure: Connection reset by peer]`
    return fail(curl)
  }
  if (repomd.status !== 200) return fail(`Status code: ${repomd.status} for ${base}repodata/repomd.xml (IP: ${repomd.host})`)
  const xml = repomd.body.toString('utf8')
  const href = (/<data type="primary">[\s\S]*?<location href="([^"]+)"\/>/.exec(xml) || [])[1]
  const primary = href ? await httpGet(base + href).catch(() => null) : null
  if (!primary || primary.status !== 200) return fail(`Status code: ${primary ? primary.status : 0} for ${base}${href} (IP: 127.0.0.1)`)
  const text = href.endsWith('.gz') ? zlib.gunzipSync(primary.body).toString('utf8') : primary.body.toString('utf8')
  const revision = (/<revision>(\d+)<\/revision>/.exec(xml) || [])[1] || '0'
  const data = {fetched: Date.now(), revision, packages: parsePrimary(text, repo), bytes: repomd.body.length + primary.body.length}
  fs.mkdirSync(path.dirname(cacheFile), {recursive: true})
  writeJson(cacheFile, data)
  if (!o.quiet) out(`${repo.name.padEnd(48)} ${fmtBytes(data.bytes * 10).padStart(7)}/s | ${fmtBytes(data.bytes).padStart(6)}     00:00\n`)
  return {...data, fromCache: false}
}

/** Every enabled repo's packages for this architecture, split into visible and excluded. */
async function dnfAvailable(ctx, o) {
  const repos = dnfSelectRepos(o)
  const visible = []
  const excluded = []
  let oldest = Date.now()
  for (const repo of repos) {
    const data = await dnfLoadRepo(o, repo)
    oldest = Math.min(oldest, data.fetched)
    const ignoreExcludes = o.disableexcludes.some((d) => d === 'all' || d === repo.id)
    for (const p of data.packages) {
      if (p.arch !== RPM_ARCH[ctx.node.arch] && p.arch !== 'noarch') continue
      const hidden = !ignoreExcludes && repo.exclude.some((x) => globToRegExp(x).test(p.name))
      ;(hidden ? excluded : visible).push(p)
    }
    repo.data = data
  }
  if (!o.quiet && repos.length) {
    const secs = Math.round((Date.now() - oldest) / 1000)
    out(`Last metadata expiration check: ${Math.floor(secs / 3600)}:${String(Math.floor(secs / 60) % 60).padStart(2, '0')}:${String(secs % 60).padStart(2, '0')} ago on ${fmtDnfDate(new Date(oldest))}.\n`)
  }
  return {repos, visible, excluded}
}

function evrOf(p) { return `${p.version}-${p.release}` }
function nevraOf(p) { return `${p.name}-${evrOf(p)}.${p.arch}` }

/** dnf's NEVRA forms of a package spec: name, name.arch, name-version, name-version-release[.arch]. */
function specMatches(spec, p) {
  const forms = [p.name, `${p.name}.${p.arch}`, `${p.name}-${p.version}`, `${p.name}-${evrOf(p)}`, nevraOf(p), `${p.name}-${p.epoch}:${evrOf(p)}`, `${p.name}-${p.epoch}:${evrOf(p)}.${p.arch}`]
  const re = globToRegExp(spec)
  return forms.some((f) => re.test(f))
}

function installedRpms(ctx) {
  const db = packageDb(ctx)
  return Object.keys(db).map((name) => {
    const {version, release} = splitRpm(db[name].version)
    return {name, arch: db[name].arch, epoch: '0', version, release, repo: '@' + (db[name].repo || 'kubernetes')}
  })
}

function dnfListColumns(rows) {
  const w1 = Math.max(40, ...rows.map((r) => r[0].length + 1))
  const w2 = Math.max(20, ...rows.map((r) => r[1].length + 1))
  return rows.map((r) => `${r[0].padEnd(w1)} ${r[1].padEnd(w2)} ${r[2]}\n`).join('')
}

async function dnfMain(ctx, args) {
  if (args[0] === '--version') {
    out('4.14.0\n  Installed: dnf-0:4.14.0-17.el9.noarch at Mon 06 Jan 2025 10:00:00 AM UTC\n')
    return
  }
  const o = parseDnfArgs(ctx, args)
  const cmd = o.ops.shift()
  try {
    if (!cmd) {
      errw('usage: dnf [options] COMMAND\n\nList of Main Commands: install, downgrade, upgrade, list, repolist, makecache, clean (homelab simulation)\n')
      throw new Exit(1)
    }
    if (cmd === 'repolist') return await dnfRepolist(ctx, o)
    if (cmd === 'list') return await dnfList(ctx, o)
    if (cmd === 'install' || cmd === 'downgrade' || cmd === 'upgrade' || cmd === 'update') return await dnfTransaction(ctx, o, cmd === 'update' ? 'upgrade' : cmd)
    if (cmd === 'makecache') {
      o.refresh = true
      await dnfAvailable(ctx, o)
      out('Metadata cache created.\n')
      return
    }
    if (cmd === 'clean') {
      const count = exists(o.cachedir) ? fs.readdirSync(o.cachedir).length : 0
      fs.rmSync(o.cachedir, {recursive: true, force: true})
      out(`${count} files removed\n`)
      return
    }
    errw(`No such command: ${cmd}. Please use /usr/bin/dnf --help\n`)
    throw new Exit(1)
  } catch (e) {
    if (e && e.dnf) {
      if (!e.reported) errw(`Error: ${e.message}\n`)
      throw new Exit(1)
    }
    throw e
  }
}

async function dnfRepolist(ctx, o) {
  const all = dnfRepos(o.reposdirs)
  const repos = all.filter((r) => (o.repolist === 'all' ? true : o.repolist === 'enabled' ? r.enabled : !r.enabled))
  if (!o.verbose) {
    if (!repos.length) {
      out('No repositories available\n')
      return
    }
    const w = Math.max(8, ...repos.map((r) => r.id.length)) + 1
    out(`${'repo id'.padEnd(w)} repo name${o.repolist === 'all' ? '                     status' : ''}\n`)
    for (const r of repos) out(`${r.id.padEnd(w)} ${r.name}${o.repolist === 'all' ? `  ${r.enabled ? 'enabled' : 'disabled'}` : ''}\n`)
    return
  }
  out(`Loaded plugins: builddep, changelog, config-manager, copr, debug, debuginfo-install, download, generate_completion_cache, groups-manager, needs-restarting, playground, repoclosure, repodiff, repograph, repomanage, reposync, system-upgrade\nYUM version: 4.14.0\ncachedir: ${o.cachedir}\n`)
  let total = 0
  const blocks = []
  for (const r of repos) {
    let data = null
    if (r.enabled) data = await dnfLoadRepo(o, r)
    const pkgs = data ? data.packages.filter((p) => p.arch === RPM_ARCH[ctx.node.arch] || p.arch === 'noarch') : []
    const hidden = pkgs.filter((p) => r.exclude.some((x) => globToRegExp(x).test(p.name)))
    total += pkgs.length
    const lines = [
      ['Repo-id', r.id], ['Repo-name', r.name], ['Repo-status', r.enabled ? 'enabled' : 'disabled'],
      ...(data ? [['Repo-revision', data.revision], ['Repo-updated', fmtDnfDate(new Date(Number(data.revision) * 1000))], ['Repo-pkgs', String(pkgs.length)],
        ['Repo-available-pkgs', String(pkgs.length - hidden.length)], ['Repo-size', fmtBytes(pkgs.reduce((s, p) => s + p.size, 0))]] : []),
      ['Repo-baseurl', r.baseurl],
      ...(data ? [['Repo-expire', `${r.expire === Infinity ? 'Never' : `${r.expire.toLocaleString('en-US')} second(s)`} (last: ${fmtDnfDate(new Date(data.fetched))})`]] : []),
      ...(r.exclude.length ? [['Repo-exclude', r.exclude.join(', ')]] : []),
      ['Repo-filename', r.file],
    ]
    blocks.push(lines.map(([k, v]) => `${k.padEnd(19)}: ${v}\n`).join(''))
  }
  out(blocks.join('\n'))
  out(`\nTotal packages: ${total}\n`)
}

async function dnfList(ctx, o) {
  const {visible} = await dnfAvailable(ctx, o)
  const specs = o.ops.length ? o.ops : ['*']
  const installed = installedRpms(ctx).filter((p) => specs.some((s) => specMatches(s, p)))
  let available = visible.filter((p) => specs.some((s) => specMatches(s, p)))
  available = available.filter((p) => !installed.some((i) => i.name === p.name && evrOf(i) === evrOf(p) && i.arch === p.arch))
  if (!o.showduplicates) {
    // Without --showduplicates: the newest version of each name, if it is newer than what is installed.
    const newest = new Map()
    for (const p of available) if (!newest.has(p.name) || compareRpm(p, newest.get(p.name)) > 0) newest.set(p.name, p)
    available = [...newest.values()].filter((p) => {
      const i = installed.find((x) => x.name === p.name)
      return !i || compareRpm(p, i) > 0
    })
  }
  const showInstalled = o.list !== 'available' && installed.length > 0
  const showAvailable = o.list !== 'installed' && available.length > 0
  if (!showInstalled && !showAvailable) {
    errw('Error: No matching Packages to list\n')
    throw new Exit(1)
  }
  const sort = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : compareRpm(a, b))
  const rows = (list) => list.sort(sort).map((p) => [`${p.name}.${p.arch}`, evrOf(p), p.repo])
  const all = [...(showInstalled ? rows(installed) : []), ...(showAvailable ? rows(available) : [])]
  const text = dnfListColumns(all).split('\n')
  if (showInstalled) out('Installed Packages\n' + text.splice(0, installed.length).join('\n') + '\n')
  if (showAvailable) out('Available Packages\n' + text.slice(0, available.length).join('\n') + '\n')
}

async function dnfTransaction(ctx, o, cmd) {
  if (!ctx.privileged) {
    errw('Error: This command has to be run with superuser privileges (under the root user on most systems).\n')
    throw new Exit(1)
  }
  const {visible, excluded} = await dnfAvailable(ctx, o)
  const installed = installedRpms(ctx)
  const plan = []
  const missing = []
  for (const spec of o.ops) {
    let matches = visible.filter((p) => specMatches(spec, p))
    if (!matches.length) {
      if (excluded.some((p) => specMatches(spec, p))) out(`All matches were filtered out by exclude filtering for argument: ${spec}\n`)
      else out(`No match for argument: ${spec}\n`)
      missing.push(spec)
      continue
    }
    const name = matches[0].name
    const current = installed.find((i) => i.name === name)
    if (cmd === 'downgrade') matches = matches.filter((p) => current && compareRpm(p, current) < 0)
    if (cmd === 'upgrade') matches = matches.filter((p) => !current || compareRpm(p, current) > 0)
    const best = matches.sort((a, b) => compareRpm(b, a))[0]
    if (!best) {
      if (!current) out(`Package ${name} available, but not installed.\n`)
      else if (cmd === 'downgrade') out(`Package ${name} of lowest version already installed, cannot downgrade it.\n`)
      else out(`Package ${nevraOf(current)} is already installed.\n`)
      continue
    }
    if (current && compareRpm(best, current) === 0) {
      out(`Package ${nevraOf(current)} is already installed.\n`)
      continue
    }
    plan.push({p: best, current, kind: !current ? 'Installing' : compareRpm(best, current) > 0 ? 'Upgrading' : 'Downgrading'})
  }
  if (missing.length) {
    errw(`Error: Unable to find a match: ${missing.join(' ')}\n`)
    throw new Exit(1)
  }
  out('Dependencies resolved.\n')
  if (!plan.length) {
    out('Nothing to do.\nComplete!\n')
    return
  }
  const bar = '='.repeat(80)
  out(`${bar}\n ${'Package'.padEnd(22)} ${'Architecture'.padEnd(13)} ${'Version'.padEnd(24)} ${'Repository'.padEnd(12)} Size\n${bar}\n`)
  for (const kind of ['Installing', 'Upgrading', 'Downgrading']) {
    const rows = plan.filter((x) => x.kind === kind)
    if (!rows.length) continue
    out(`${kind}:\n`)
    for (const x of rows) out(` ${x.p.name.padEnd(22)} ${x.p.arch.padEnd(13)} ${evrOf(x.p).padEnd(24)} ${x.p.repo.padEnd(12)} ${fmtBytes(x.p.size)}\n`)
  }
  const count = (kind) => plan.filter((x) => x.kind === kind).length
  out(`\nTransaction Summary\n${bar}\n`)
  if (count('Installing')) out(`Install    ${count('Installing')} Package${count('Installing') > 1 ? 's' : ''}\n`)
  if (count('Upgrading')) out(`Upgrade    ${count('Upgrading')} Package${count('Upgrading') > 1 ? 's' : ''}\n`)
  if (count('Downgrading')) out(`Downgrade  ${count('Downgrading')} Package${count('Downgrading') > 1 ? 's' : ''}\n`)
  out(`\nTotal download size: ${fmtBytes(plan.reduce((s, x) => s + x.p.size, 0))}\n`)
  if (!o.yes) {
    out('Is this ok [y/N]: ')
    let answer = ''
    try {
      answer = fs.readFileSync(0, 'utf8').split('\n')[0]
    } catch {}
    if (!/^y(es)?$/i.test(answer.trim())) {
      out('Operation aborted.\n')
      throw new Exit(1)
    }
  }
  out('Downloading Packages:\n')
  const repos = new Map(dnfSelectRepos(o).map((r) => [r.id, r]))
  const failures = []
  for (const x of plan) {
    const base = repos.get(x.p.repo).baseurl.replace(/\/?$/, '/')
    const url = base + x.p.href
    const file = path.basename(x.p.href)
    const failure = installFailure(ctx, x.p.name)
    let res
    try {
      res = failure ? {status: 404, host: '127.0.0.1'} : await httpGet(url)
    } catch (e) {
      if (!e.net) throw e
      res = {status: 0, host: e.host, error: e.message}
    }
    if (res.status !== 200) {
      const why = res.error || `Status code: ${res.status} for ${url} (IP: ${res.host})`
      out(`[MIRROR] ${file}: ${why}\n[FAILED] ${file}: ${why}\n`)
      failures.push(`  ${nevraOf(x.p)}: Cannot download, all mirrors were already tried without success`)
      continue
    }
    if (x.p.sha256 && sha256(res.body) !== x.p.sha256) {
      failures.push(`  ${nevraOf(x.p)}: Downloading successful, but checksum doesn't match. Calculated: ${sha256(res.body)}(sha256)  Expected: ${x.p.sha256}(sha256)`)
      continue
    }
    out(`(${plan.indexOf(x) + 1}/${plan.length}): ${file.padEnd(52)} ${fmtBytes(res.body.length)}  00:00\n`)
  }
  if (failures.length) {
    errw(`Error: Error downloading packages:\n${failures.join('\n')}\n`)
    throw new Exit(1)
  }
  out(`${'-'.repeat(80)}\nTotal\nRunning transaction check\nTransaction check succeeded.\nRunning transaction test\nTransaction test succeeded.\nRunning transaction\n  Preparing        :${' '.repeat(55)}1/1\n`)
  const db = packageDb(ctx)
  for (const x of plan) {
    out(`  ${x.kind.replace(/ing$/, 'ing').padEnd(17)}: ${nevraOf(x.p)}\n`)
    installPayload(ctx, x.p.name, evrOf(x.p))
    db[x.p.name] = {version: evrOf(x.p), arch: x.p.arch, hold: false, status: 'installed', repo: x.p.repo}
  }
  savePackageDb(ctx, db)
  const done = {Installing: 'Installed', Upgrading: 'Upgraded', Downgrading: 'Downgraded'}
  for (const kind of ['Upgrading', 'Downgrading', 'Installing']) {
    const rows = plan.filter((x) => x.kind === kind)
    if (rows.length) out(`\n${done[kind]}:\n${rows.map((x) => `  ${nevraOf(x.p)}`).join('\n')}\n`)
  }
  out('\nComplete!\n')
}

// ----------------------------------------------------------------------------- kubeadm

const GO_BY_MINOR = {29: 'go1.21.13', 30: 'go1.22.8', 31: 'go1.22.10', 32: 'go1.23.6', 33: 'go1.24.2', 34: 'go1.24.6', 35: 'go1.25.1'}
const COMPONENTS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler']
const STACK_HINT = 'To see the stack trace of this error execute with --v=5 or higher'

function versionInfo(kube, arch) {
  const k = parseKube(kube)
  const commit = crypto.createHash('sha1').update(`kubernetes ${k.text}`).digest('hex')
  const built = new Date(Date.UTC(2024, 0, 1) + (k.minor * 40 + k.patch) * 86400000 % (3 * 365 * 86400000)).toISOString().replace(/\.\d+Z$/, 'Z')
  return {major: String(k.major), minor: String(k.minor), gitVersion: k.text, gitCommit: commit, gitTreeState: 'clean', buildDate: built, goVersion: nearest(GO_BY_MINOR, k.minor), compiler: 'gc', platform: `linux/${arch}`}
}

function goInfo(info) {
  return `&version.Info{Major:"${info.major}", Minor:"${info.minor}", GitVersion:"${info.gitVersion}", GitCommit:"${info.gitCommit}", GitTreeState:"${info.gitTreeState}", BuildDate:"${info.buildDate}", GoVersion:"${info.goVersion}", Compiler:"${info.compiler}", Platform:"${info.platform}"}`
}

function yamlOf(obj, indent = '') {
  return Object.entries(obj).map(([k, v]) => (v && typeof v === 'object' ? `${indent}${k}:\n${yamlOf(v, indent + '  ')}` : `${indent}${k}: ${v}\n`)).join('')
}

/** pflag-style flags: --name=value, --name value, -y; booleans take `=false`. */
function parseFlags(args, spec) {
  const flags = {}
  const positional = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a === '--') { positional.push(...args.slice(i + 1)); break }
    if (!a.startsWith('-') || a === '-') { positional.push(a); continue }
    const eq = a.indexOf('=')
    const raw = eq === -1 ? a : a.slice(0, eq)
    const def = spec[raw]
    if (!def) {
      errw(`unknown flag: ${raw}\n${STACK_HINT}\n`)
      throw new Exit(1)
    }
    if (def.type === 'bool') flags[def.name] = eq === -1 ? true : !/^(false|0)$/.test(a.slice(eq + 1))
    else if (eq !== -1) flags[def.name] = a.slice(eq + 1)
    else {
      if (i + 1 >= args.length) {
        errw(`flag needs an argument: ${raw}\n${STACK_HINT}\n`)
        throw new Exit(1)
      }
      flags[def.name] = args[++i]
    }
  }
  return {flags, positional}
}
/** [['yes|y', 'bool']]: the first name is the long flag (`--yes`), one-letter aliases are short (`-y`); `v` is both `--v` and `-v`. */
function flagSpec(defs) {
  const spec = {}
  for (const [names, type] of defs) {
    const [primary, ...aliases] = names.split('|')
    spec['--' + primary] = {name: primary, type}
    for (const a of primary.length === 1 ? [primary, ...aliases] : aliases) spec['-' + a] = {name: primary, type}
  }
  return spec
}

const COMMON_FLAGS = [['kubeconfig', 'string'], ['config', 'string'], ['ignore-preflight-errors', 'string'], ['v', 'string'], ['rootfs', 'string']]
const PLAN_FLAGS = [...COMMON_FLAGS, ['allow-experimental-upgrades', 'bool'], ['allow-release-candidate-upgrades', 'bool'], ['print-config', 'bool'], ['output|o', 'string'], ['show-managed-fields', 'bool']]
const APPLY_FLAGS = [...PLAN_FLAGS.filter(([n]) => !n.startsWith('output')), ['yes|y', 'bool'], ['force|f', 'bool'], ['dry-run', 'bool'], ['etcd-upgrade', 'bool'], ['certificate-renewal', 'bool'], ['patches', 'string'], ['image-pull-timeout', 'string'], ['skip-phases', 'string']]
const NODE_FLAGS = [...COMMON_FLAGS, ['dry-run', 'bool'], ['etcd-upgrade', 'bool'], ['certificate-renewal', 'bool'], ['patches', 'string'], ['skip-phases', 'string'], ['image-pull-timeout', 'string']]

function kubeadmFail(message) {
  errw(`${message}\n${STACK_HINT}\n`)
  throw new Exit(1)
}

function ignored(flags, check) {
  const list = String(flags['ignore-preflight-errors'] || '').toLowerCase().split(',')
  return list.includes('all') || list.includes(check.toLowerCase())
}

/** RunRootCheckOnly and friends: fatal checks fail together, ignored ones become warnings. */
function preflight(flags, checks) {
  const fatal = []
  for (const [name, problem] of checks) {
    if (!problem) continue
    if (ignored(flags, name)) out(`\t[WARNING ${name}]: ${problem}\n`)
    else fatal.push(`\t[ERROR ${name}]: ${problem}`)
  }
  if (fatal.length) {
    return `[preflight] Some fatal errors occurred:\n${fatal.join('\n')}\n[preflight] If you know what you are doing, you can make a check non-fatal with \`--ignore-preflight-errors=...\``
  }
  return ''
}

/** The kubeconfig kubeadm upgrade reads: --kubeconfig, else admin.conf (a worker's `upgrade node`: kubelet.conf). */
function kubeconfigFor(ctx, flags, allowKubelet) {
  const admin = path.join(ctx.node.kubeDir, 'admin.conf')
  if (flags.kubeconfig) return flags.kubeconfig
  if (allowKubelet && !exists(admin)) return path.join(ctx.node.kubeDir, 'kubelet.conf')
  return admin
}

async function clusterState(ctx) {
  const state = await control(ctx, 'GET', '/kubeadm/state')
  if (!state.apiReachable) {
    kubeadmFail(`[upgrade/init config] FATAL: failed to get config map: Get "${state.apiUrl}/api/v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=10s": dial tcp ${state.apiUrl.replace(/^https:\/\//, '')}: connect: connection refused`)
  }
  if (!state.initialized) kubeadmFail('[upgrade/init config] FATAL: configmaps "kubeadm-config" not found')
  return state
}

/** What the static pod manifests on this node run, by component: image tags. */
function manifestVersions(ctx) {
  const dir = path.join(ctx.node.kubeDir, 'manifests')
  const versions = {}
  for (const c of [...COMPONENTS, 'etcd']) {
    const text = readText(path.join(dir, `${c}.yaml`))
    const m = text && /image: \S+:(\S+)/.exec(text)
    if (m) versions[c] = m[1]
  }
  return versions
}

function releaseBase(ctx) { return (ctx.env.HOMELAB_SIM_RELEASE_URL || 'https://dl.k8s.io/release').replace(/\/+$/, '') }

/** kubeadm's KubernetesReleaseVersion for a label (`stable`, `stable-1.31`, `latest`...) from the release files. */
async function releaseLabel(ctx, label, kubeadmVersion) {
  const url = `${releaseBase(ctx)}/${label}.txt`
  let res
  try {
    res = await httpGet(url)
  } catch (e) {
    throw new Error(`unable to get URL "${url}": Get "${url}": ${e.message}`)
  }
  if (res.status !== 200) throw new Error(`unable to fetch file. URL: "${url}", status: ${res.status} ${res.statusText}`)
  const version = res.body.toString('utf8').trim()
  const remote = parseKube(version)
  if (!remote) throw new Error(`version "${version}" from ${url} is not a Kubernetes version`)
  const client = parseKube(kubeadmVersion)
  // version.go: a remote version of a newer minor than kubeadm falls back to kubeadm's minor.
  if (/^stable$|^latest$/.test(label) && client && remote.minor > client.minor) {
    const fallback = `${label}-${client.major}.${client.minor}`
    errw(`I${klogTime()} ${String(process.pid).padStart(7)} version.go:261] remote version is much newer: ${version}; falling back to: ${fallback}\n`)
    return releaseLabel(ctx, fallback, kubeadmVersion)
  }
  return remote.text
}

function klogTime() {
  const d = new Date()
  const pad = (n, w = 2) => String(n).padStart(w, '0')
  return `${pad(d.getMonth() + 1)}${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds() * 1000, 6)}`
}

/** A Go tabwriter(minwidth 10, tabwidth 4, padding 3): every cell but the last padded. */
function tabwrite(rows) {
  const widths = []
  for (const r of rows) r.slice(0, -1).forEach((c, i) => { widths[i] = Math.max(widths[i] || 0, c.length + 3, 10) })
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('') + '\n').join('')
}

function byVersion(map) { return Object.keys(map).sort() }

/** Cluster-wide component versions: {component: {version: [nodes]}}. */
function componentMaps(state) {
  const maps = {kubelet: {}, 'kube-apiserver': {}, 'kube-controller-manager': {}, 'kube-scheduler': {}, etcd: {}}
  for (const n of state.nodes) {
    if (n.kubeletVersion) (maps.kubelet[n.kubeletVersion] ||= []).push(n.name)
    for (const [c, v] of Object.entries(n.components || {})) (maps[c][v] ||= []).push(n.name)
  }
  return maps
}

async function kubeadmPlan(ctx, kube, args) {
  const {flags, positional} = parseFlags(args, flagSpec(PLAN_FLAGS))
  const kubeconfig = kubeconfigFor(ctx, flags, false)
  if (!exists(kubeconfig)) kubeadmFail(`couldn't create a Kubernetes client from file "${kubeconfig}": failed to load admin kubeconfig: open ${kubeconfig}: no such file or directory`)
  out('[preflight] Running pre-flight checks.\n')
  const root = preflight(flags, [['IsPrivilegedUser', ctx.privileged ? '' : 'user is not running as root']])
  if (root) kubeadmFail(root)
  const state = await clusterState(ctx)
  out('[upgrade/config] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...\n')
  out("[upgrade/config] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.\n")
  await healthChecks(ctx, flags, state)
  const failure = (ctx.knobs.kubeadmFailures || {}).plan
  if (failure) kubeadmFail(`[upgrade/versions] FATAL: ${failure}`)
  out('[upgrade] Fetching available versions to upgrade to\n')
  const maps = componentMaps(state)
  const apiVersions = Object.keys(maps['kube-apiserver'])
  const cluster = apiVersions.map(parseKube).sort(compareKube).pop()
  const clusterStr = `${cluster.major}.${cluster.minor}.${cluster.patch}${cluster.pre ? '-' + cluster.pre : ''}`
  out(`[upgrade/versions] Cluster version: ${clusterStr}\n`)
  out(`[upgrade/versions] kubeadm version: ${kube}\n`)
  const offline = positional[0] ? normalizeOffline(positional[0]) : null
  const label = async (l) => (offline ? offline : releaseLabel(ctx, l, kube))
  let stable
  try {
    stable = await label('stable')
    out(`[upgrade/versions] Target version: ${stable}\n`)
  } catch (e) {
    errw(`W${klogTime()} ${String(process.pid).padStart(7)} compute.go:103] [upgrade/versions] WARNING: could not fetch a Kubernetes version from the internet: ${e.message}\n`)
    errw(`W${klogTime()} ${String(process.pid).padStart(7)} compute.go:104] [upgrade/versions] WARNING: Falling back to current kubeadm version as latest stable version\n`)
    stable = kube
  }
  const upgrades = []
  const stableV = parseKube(stable)
  let canMinor = compareKube(cluster, stableV) < 0
  const isExternal = Object.keys(maps.etcd).length === 0
  const after = (target, kubeadmTarget) => ({kube: target, kubeadm: kubeadmTarget, dns: coreDnsVersionFor(kube), etcd: isExternal ? '' : etcdVersionFor(target)})
  if (compareKube(stableV, cluster) >= 0) {
    const branch = `${cluster.major}.${cluster.minor}`
    const description = `version in the v${branch} series`
    try {
      const patch = await label(`stable-${branch}`)
      out(`[upgrade/versions] Latest ${description}: ${patch}\n`)
      canMinor = compareKube(patch, stableV) < 0
      if (compareKube(cluster, patch) < 0) upgrades.push({description, ...after(patch, compareKube(kube, patch) >= 0 ? kube : patch)})
    } catch (e) {
      errw(`W${klogTime()} ${String(process.pid).padStart(7)} compute.go:141] [upgrade/versions] WARNING: ${e.message}\n`)
    }
  }
  if (canMinor) upgrades.push({description: 'stable version', ...after(stableV.text, stableV.text)})
  out('\n')
  for (const up of upgrades) printUpgrade(up, maps, clusterStr, kube, state.dnsVersion)
  out('\nThe table below shows the current state of component configs as understood by this version of kubeadm.\n' +
    'Configs that have a "yes" mark in the "MANUAL UPGRADE REQUIRED" column require manual config upgrade or\n' +
    'resetting to kubeadm defaults before a successful upgrade can be performed. The version to manually\n' +
    'upgrade to is denoted in the "PREFERRED VERSION" column.\n\n')
  out(tabwrite([['API GROUP', 'CURRENT VERSION', 'PREFERRED VERSION', 'MANUAL UPGRADE REQUIRED'], ['kubeproxy.config.k8s.io', 'v1alpha1', 'v1alpha1', 'no'], ['kubelet.config.k8s.io', 'v1beta1', 'v1beta1', 'no']]))
  out('_____________________________________________________________________\n\n')
}

function normalizeOffline(arg) {
  const k = parseKube(arg)
  if (!k) kubeadmFail(`[upgrade/versions] FATAL: version "${arg}" doesn't match patterns for neither semantic version nor labels (stable, latest, ...)`)
  return k.text
}

function printUpgrade(up, maps, clusterStr, kube, dnsVersion) {
  const rows = (component, target) => byVersion(maps[component]).flatMap((v) => maps[component][v].map((node) => [component, node, v, target]))
  const header = ['COMPONENT', 'NODE', 'CURRENT', 'TARGET']
  const kubelets = byVersion(maps.kubelet)
  const canKubelets = kubelets.length > 1 || (kubelets.length === 1 && kubelets[0] !== up.kube)
  out("Components that must be upgraded manually after you have upgraded the control plane with 'kubeadm upgrade apply':\n")
  out(tabwrite([header, ...(canKubelets ? rows('kubelet', up.kube) : [])]))
  out(`\nUpgrade to the latest ${up.description}:\n\n`)
  const table = [header, ...rows('kube-apiserver', up.kube), ...rows('kube-controller-manager', up.kube), ...rows('kube-scheduler', up.kube),
    ['kube-proxy', '', clusterStr, up.kube], ['CoreDNS', '', dnsVersion, up.dns], ...(up.etcd ? rows('etcd', up.etcd) : [])]
  out(tabwrite(table))
  const flag = parseKube(up.kube).pre ? (parseKube(up.kube).preKind === 'rc' ? ' --allow-release-candidate-upgrades' : ' --allow-experimental-upgrades') : ''
  out(`\nYou can now apply the upgrade by executing the following command:\n\n\tkubeadm upgrade apply ${up.kube}${flag}\n\n`)
  if (up.kubeadm !== kube) out(`Note: Before you can perform this upgrade, you have to update kubeadm to ${up.kubeadm}.\n\n`)
  out('_____________________________________________________________________\n\n')
}

async function healthChecks(ctx, flags, state) {
  out('[upgrade] Running cluster health checks\n')
  const notReady = state.nodes.filter((n) => n.controlPlane && !n.ready).map((n) => n.name)
  const manifests = ctx.node.controlPlane ? COMPONENTS.filter((c) => !exists(path.join(ctx.node.kubeDir, 'manifests', `${c}.yaml`))) : []
  const problem = preflight(flags, [
    ['ControlPlaneNodesReady', notReady.length ? `there are NotReady control-planes in the cluster: [${notReady.join(' ')}]` : ''],
    ['StaticPodManifest', manifests.length ? `the manifest for component ${manifests[0]} does not exist: stat ${path.join(ctx.node.kubeDir, 'manifests', manifests[0] + '.yaml')}: no such file or directory` : ''],
  ])
  if (problem) kubeadmFail(`[upgrade/health] FATAL: ${problem}`)
}

/** kubeadm's EnforceVersionPolicies (phases/upgrade/policy.go): mandatory and skippable errors. */
function versionPolicies(cluster, kubeadmV, target, kubelets, flags) {
  const t = parseKube(target)
  const c = parseKube(cluster)
  const k = parseKube(kubeadmV)
  const mandatory = []
  const skippable = []
  const released = !t.pre
  if (t.minor > c.minor + 1) (released ? mandatory : skippable).push(`Specified version to upgrade to "${target}" is too high; kubeadm can upgrade only 1 minor version at a time`)
  if (t.minor < c.minor - 1) (released ? mandatory : skippable).push(`Specified version to downgrade to "${target}" is too low; kubeadm can downgrade only 1 minor version at a time`)
  if (compareKube(k, t) < 0) {
    if (t.minor > k.minor) (released ? mandatory : skippable).push(`Specified version to upgrade to "${target}" is at least one minor release higher than the kubeadm minor release (${t.minor} > ${k.minor}). Such an upgrade is not supported`)
    else skippable.push(`Specified version to upgrade to "${target}" is higher than the kubeadm version "${kubeadmV}". Upgrade kubeadm first using the tool you used to install kubeadm`)
  }
  if (k.major > t.major || k.minor > t.minor) skippable.push(`Kubeadm version ${kubeadmV} can only be used to upgrade to Kubernetes version ${k.major}.${k.minor}`)
  if (t.pre && !flags['allow-experimental-upgrades'] && !(t.preKind === 'rc' && flags['allow-release-candidate-upgrades'])) {
    skippable.push(`Specified version to upgrade to "${target}" is an unstable version and such upgrades weren't allowed via setting the --allow-*-upgrades flags`)
  }
  const old = kubelets.filter((v) => t.minor > parseKube(v).minor + 1)
  if (old.length) skippable.push(`There are kubelets in this cluster that are too old that have these versions [${old.join(' ')}]`)
  return {mandatory, skippable}
}

function backupStamp() {
  const d = new Date()
  const pad = (n) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}-${pad(d.getHours())}-${pad(d.getMinutes())}-${pad(d.getSeconds())}`
}

/** Rewrites one manifest's image tag; returns the old text (for the backup / rollback). */
function rewriteManifest(file, tag) {
  const text = fs.readFileSync(file, 'utf8')
  fs.writeFileSync(file, text.replace(/(image: \S+:)(\S+)/, `$1${tag}`))
  return text
}

function writeKubeletConfig(ctx, version) {
  const file = path.join(ctx.node.kubeletDir, 'config.yaml')
  const backup = path.join(ctx.node.kubeDir, 'tmp', `kubeadm-kubelet-config${Math.floor(Math.random() * 1e9)}`)
  if (exists(file)) {
    fs.mkdirSync(backup, {recursive: true})
    fs.copyFileSync(file, path.join(backup, 'config.yaml'))
    out(`[upgrade] Backing up kubelet config file to ${backup}/config.yaml\n`)
  }
  fs.mkdirSync(ctx.node.kubeletDir, {recursive: true})
  fs.writeFileSync(file, kubeletConfigYaml(version))
  out(`[upgrade/kubelet-config] Writing kubelet configuration to file "${file}"\n`)
}

function kubeletConfigYaml(version) {
  return `# homelab simulation: written by kubeadm for Kubernetes ${version}\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n` +
    'authentication:\n  anonymous:\n    enabled: false\n  webhook:\n    enabled: true\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\n' +
    'authorization:\n  mode: Webhook\ncgroupDriver: systemd\nclusterDNS:\n- 10.96.0.10\nclusterDomain: cluster.local\n' +
    `containerRuntimeEndpoint: unix:///var/run/containerd/containerd.sock\nrotateCertificates: true\nstaticPodPath: /etc/kubernetes/manifests\n`
}

/**
 * The static pod part of `upgrade apply` and `upgrade node` on a control plane: back the
 * manifests up, rewrite the image tags, have the simulated kubelet restart the pods (through
 * the control server), and put everything back if a component does not come up.
 */
async function upgradeStaticPods(ctx, flags, target, {etcdUpgrade, report}) {
  const manifests = path.join(ctx.node.kubeDir, 'manifests')
  const stamp = backupStamp()
  const backupDir = path.join(ctx.node.kubeDir, 'tmp', `kubeadm-backup-manifests-${stamp}`)
  const upgradedDir = path.join(ctx.node.kubeDir, 'tmp', `kubeadm-upgraded-manifests${Math.floor(Math.random() * 1e9)}`)
  fs.mkdirSync(backupDir, {recursive: true})
  fs.mkdirSync(upgradedDir, {recursive: true})
  out(`[upgrade/staticpods] Writing new Static Pod manifests to "${upgradedDir}"\n`)
  const current = manifestVersions(ctx)
  const etcdTarget = etcdVersionFor(target)
  const stacked = current.etcd !== undefined
  const wanted = {}
  if (stacked && etcdUpgrade) {
    if (compareEtcd(current.etcd, etcdTarget) > 0) {
      out(`[upgrade/etcd] Non fatal issue encountered during upgrade: the desired etcd version "${etcdTarget}" is older than the currently installed "${current.etcd}". Skipping etcd upgrade\n`)
    } else wanted.etcd = etcdTarget
  }
  for (const c of COMPONENTS) wanted[c] = target
  const failure = (ctx.knobs.kubeadmFailures || {})[report]
  const changed = []
  const restore = () => {
    for (const c of changed) fs.copyFileSync(path.join(backupDir, `${c}.yaml`), path.join(manifests, `${c}.yaml`))
  }
  if (stacked && wanted.etcd && wanted.etcd !== current.etcd) {
    const etcdBackup = path.join(ctx.node.kubeDir, 'tmp', `kubeadm-backup-etcd-${stamp}`, 'etcd')
    fs.mkdirSync(path.dirname(etcdBackup), {recursive: true})
    if (exists(ctx.node.etcdDataDir)) fs.cpSync(ctx.node.etcdDataDir, etcdBackup, {recursive: true})
  }
  for (const c of ['etcd', ...COMPONENTS]) {
    if (!wanted[c]) continue
    out(`[upgrade/staticpods] Preparing for "${c}" upgrade\n`)
    const file = path.join(manifests, `${c}.yaml`)
    if (current[c] === wanted[c]) {
      out(`[upgrade/staticpods] Current and new manifests of ${c} are equal, skipping upgrade\n`)
      continue
    }
    if (c === 'etcd') out('[upgrade/staticpods] Renewing etcd-server certificate\n[upgrade/staticpods] Renewing etcd-peer certificate\n[upgrade/staticpods] Renewing etcd-healthcheck-client certificate\n')
    if (c === 'kube-apiserver') out('[upgrade/staticpods] Renewing apiserver certificate\n[upgrade/staticpods] Renewing apiserver-kubelet-client certificate\n[upgrade/staticpods] Renewing front-proxy-client certificate\n[upgrade/staticpods] Renewing apiserver-etcd-client certificate\n')
    if (c === 'kube-controller-manager') out('[upgrade/staticpods] Renewing controller-manager.conf certificate\n')
    if (c === 'kube-scheduler') out('[upgrade/staticpods] Renewing scheduler.conf certificate\n')
    fs.writeFileSync(path.join(backupDir, `${c}.yaml`), rewriteManifest(file, wanted[c]))
    changed.push(c)
    out(`[upgrade/staticpods] Moving new manifest to "${file}" and backing up old manifest to "${path.join(backupDir, c + '.yaml')}"\n`)
    out('[upgrade/staticpods] Waiting for the kubelet to restart the component\n[upgrade/staticpods] This can take up to 5m0s\n')
    if (failure && c === 'kube-apiserver') {
      restore()
      return `couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier state. Errors faced: ${failure}`
    }
  }
  const body = {version: target, etcdVersion: stacked && wanted.etcd ? wanted.etcd : undefined, components: changed}
  try {
    if (changed.length) await control(ctx, 'POST', `/nodes/${encodeURIComponent(ctx.node.name)}/static-pods`, body)
  } catch (e) {
    restore()
    return `couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier state. Errors faced: ${e.message}`
  }
  for (const c of changed) {
    out(`[apiclient] Found 1 Pods for label selector component=${c}\n[upgrade/staticpods] Component "${c}" upgraded successfully!\n`)
    if (c === 'etcd') out('[upgrade/etcd] Waiting for etcd to become available\n')
  }
  return ''
}

function compareEtcd(a, b) {
  const pa = a.split(/[.-]/).map(Number)
  const pb = b.split(/[.-]/).map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) if ((pa[i] || 0) !== (pb[i] || 0)) return (pa[i] || 0) - (pb[i] || 0)
  return 0
}

function confirm(question) {
  out(`${question} [y/N]: `)
  let answer = ''
  try {
    answer = fs.readFileSync(0, 'utf8').split('\n')[0]
  } catch {}
  if (!/^y$/i.test(answer.trim())) kubeadmFail("won't proceed; the user didn't answer (Y|y) in order to continue")
}

async function kubeadmApply(ctx, kube, args) {
  const {flags, positional} = parseFlags(args, flagSpec(APPLY_FLAGS))
  const k = parseKube(kube)
  const newStyle = k.minor >= 32
  const tag = (phase) => (newStyle ? `[upgrade/${phase}]` : '[upgrade]')
  const kubeconfig = kubeconfigFor(ctx, flags, false)
  if (!exists(kubeconfig)) kubeadmFail(`couldn't create a Kubernetes client from file "${kubeconfig}": failed to load admin kubeconfig: open ${kubeconfig}: no such file or directory`)
  if (positional.length === 0) kubeadmFail('missing one or more required arguments. Required arguments: [version]')
  const state = await clusterState(ctx)
  out('[upgrade] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...\n')
  out("[upgrade] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.\n")
  out(`${tag('preflight')} Running preflight checks\n`)
  const root = preflight(flags, [['IsPrivilegedUser', ctx.privileged ? '' : 'user is not running as root']])
  if (root) kubeadmFail(newStyle ? `error execution phase preflight: ${root}` : root)
  await healthChecks(ctx, flags, state)
  // NormalizeKubernetesVersion: a label is looked up, a version gets its `v`.
  let target = positional[0]
  if (/^(stable|latest)(-\d+(\.\d+)?)?$/.test(target)) {
    try {
      target = await releaseLabel(ctx, target, kube)
    } catch (e) {
      kubeadmFail(e.message)
    }
  }
  const tv = parseKube(target)
  if (!tv) kubeadmFail(`version "${target}" doesn't match patterns for neither semantic version nor labels (stable, latest, ...)`)
  target = tv.text
  out(`${tag('preflight')} You have chosen to upgrade the cluster version to "${target}"\n`)
  const cluster = state.serverVersion
  out(`[upgrade/versions] Cluster version: ${cluster}\n[upgrade/versions] kubeadm version: ${kube}\n`)
  const policy = versionPolicies(cluster, kube, target, Object.keys(componentMaps(state).kubelet), flags)
  const fatalPrefix = newStyle ? 'error execution phase preflight: [upgrade/version] FATAL' : '[upgrade/version] FATAL'
  const list = (errs) => errs.map((e) => `\t- ${e}\n`).join('')
  if (policy.mandatory.length) kubeadmFail(`${fatalPrefix}: the --version argument is invalid due to these fatal errors:\n\n${list(policy.mandatory)}\nPlease fix the misalignments highlighted above and try upgrading again`)
  if (policy.skippable.length && !flags.force) kubeadmFail(`${fatalPrefix}: the --version argument is invalid due to these errors:\n\n${list(policy.skippable)}\nCan be bypassed if you pass the --force flag`)
  if (policy.skippable.length) out(`[upgrade/version] Found ${policy.skippable.length} potential version compatibility errors but skipping since the --force flag is set: \n\n${list(policy.skippable)}`)
  if (!(flags.yes || flags.force || flags['dry-run'])) confirm('[upgrade] Are you sure you want to proceed?')
  if (flags['dry-run']) {
    out(`[dryrun] Would pull the required images (like 'kubeadm config images pull')\n[upgrade/apply] Upgrading your Static Pod-hosted control plane to version "${target}"...\n[dryrun] Finished dryrunning successfully!\n`)
    return
  }
  if (!ctx.privileged) kubeadmFail(`mkdir ${path.join(ctx.node.kubeDir, 'tmp')}: permission denied`)
  out(`${tag('preflight')} Pulling images required for setting up a Kubernetes cluster\n${tag('preflight')} This might take a minute or two, depending on the speed of your internet connection\n${tag('preflight')} You can also perform this action beforehand using 'kubeadm config images pull'\n`)
  out(`${newStyle ? '[upgrade/control-plane]' : '[upgrade/apply]'} Upgrading your Static Pod-hosted control plane to version "${target}" (timeout: 5m0s)...\n`)
  const problem = await upgradeStaticPods(ctx, flags, target, {etcdUpgrade: flags['etcd-upgrade'] !== false, report: 'apply'})
  if (problem) kubeadmFail(newStyle ? `error execution phase control-plane: couldn't complete the static pod upgrade: ${problem}` : `[upgrade/apply] FATAL: ${problem}`)
  try {
    await control(ctx, 'POST', '/kubeadm/apply', {node: ctx.node.name, version: target, dnsVersion: coreDnsVersionFor(kube)})
  } catch (e) {
    kubeadmFail(newStyle ? `error execution phase upload-config: ${e.message}` : `[upgrade/apply] FATAL: ${e.message}`)
  }
  out(`${newStyle ? '[upgrade/control-plane] The control plane instance for this node was successfully upgraded!\n' : ''}[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace\n`)
  out('[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system with the configuration for the kubelets in the cluster\n')
  writeKubeletConfig(ctx, target)
  if (newStyle) out('[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!\n')
  out('[upgrade/bootstrap-token] Configuring bootstrap token and cluster-info RBAC rules\n[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes\n' +
    '[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate credentials\n' +
    '[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a Node Bootstrap Token\n' +
    '[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client certificates in the cluster\n' +
    '[addons] Applied essential addon: CoreDNS\n[addons] Applied essential addon: kube-proxy\n\n')
  if (newStyle) out(`[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "${target}".\n\n[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order.\n`)
  else out(`[upgrade/successful] SUCCESS! Your cluster was upgraded to "${target}". Enjoy!\n\n[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets if you haven't already done so.\n`)
}

async function kubeadmNode(ctx, kube, args) {
  const {flags} = parseFlags(args, flagSpec(NODE_FLAGS))
  const k = parseKube(kube)
  const kubeconfig = kubeconfigFor(ctx, flags, true)
  const isControlPlane = exists(path.join(ctx.node.kubeDir, 'manifests', 'kube-apiserver.yaml'))
  if (!exists(kubeconfig)) kubeadmFail(`couldn't create a Kubernetes client from file "${kubeconfig}": failed to load admin kubeconfig: open ${kubeconfig}: no such file or directory`)
  const state = await clusterState(ctx)
  out('[upgrade] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...\n')
  out("[upgrade] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.\n")
  out('[upgrade/preflight] Running pre-flight checks\n')
  const root = preflight(flags, [['IsPrivilegedUser', ctx.privileged ? '' : 'user is not running as root']])
  if (root) kubeadmFail(`error execution phase preflight: ${root}`)
  if (!ctx.privileged) kubeadmFail(`error execution phase kubelet-config: open ${path.join(ctx.node.kubeletDir, 'config.yaml')}: permission denied`)
  const target = state.kubernetesVersion
  // NormalizeKubernetesVersion: kubeadm supports control planes from its own minor - 1 up.
  const t = parseKube(target)
  if (t.minor < k.minor - 1) kubeadmFail(`this version of kubeadm only supports deploying clusters with the control plane version >= ${k.major}.${k.minor - 1}.0. Current version: ${target}`)
  const failure = (ctx.knobs.kubeadmFailures || {}).node
  if (isControlPlane) {
    out('[upgrade/preflight] Pulling images required for setting up a Kubernetes cluster\n[upgrade/preflight] This might take a minute or two, depending on the speed of your internet connection\n' +
      "[upgrade/preflight] You can also perform this action beforehand using 'kubeadm config images pull'\n")
    out(`[upgrade/control-plane] Upgrading your Static Pod-hosted control plane instance to version "${target}"...\n`)
    const problem = await upgradeStaticPods(ctx, flags, target, {etcdUpgrade: flags['etcd-upgrade'] !== false, report: 'node'})
    if (problem) kubeadmFail(`error execution phase control-plane: couldn't complete the static pod upgrade: ${problem}`)
    out('[upgrade/control-plane] The control plane instance for this node was successfully upgraded!\n')
  } else {
    out('[upgrade/preflight] Skipping prepull. Not a control plane node.\n[upgrade/control-plane] Skipping phase. Not a control plane node.\n')
    if (failure) kubeadmFail(`error execution phase kubelet-config: ${failure}`)
  }
  writeKubeletConfig(ctx, target)
  out('[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!\n')
  const why = isControlPlane ? 'Not all control plane instances have been upgraded yet.' : 'Not a control plane node.'
  out(`[upgrade/addon] Skipping the addon/coredns phase. ${why}\n[upgrade/addon] Skipping the addon/kube-proxy phase. ${why}\n`)
  out('[upgrade] The configuration for this node was successfully updated!\n[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.\n')
}

async function kubeadmMain(ctx, kube, args) {
  const [cmd, sub, ...rest] = args
  if (cmd === 'version') {
    const {flags} = parseFlags([sub, ...rest].filter((a) => a !== undefined), flagSpec([['output|o', 'string']]))
    const info = versionInfo(kube, DEB_ARCH[ctx.node.arch])
    if (!flags.output) out(`kubeadm version: ${goInfo(info)}\n`)
    else if (flags.output === 'short') out(`${kube}\n`)
    else if (flags.output === 'json') out(JSON.stringify({clientVersion: info}, null, 2) + '\n')
    else if (flags.output === 'yaml') out(`clientVersion:\n${yamlOf(info, '  ')}`)
    else kubeadmFail(`invalid output format: ${flags.output}`)
    return
  }
  if (cmd === 'upgrade' && sub === 'plan') return kubeadmPlan(ctx, kube, rest)
  if (cmd === 'upgrade' && sub === 'apply') return kubeadmApply(ctx, kube, rest)
  if (cmd === 'upgrade' && sub === 'node') return kubeadmNode(ctx, kube, rest)
  if (cmd === 'config' && sub === 'images' && (rest[0] === 'list' || rest[0] === 'pull')) {
    const {flags} = parseFlags(rest.slice(1), flagSpec([['kubernetes-version', 'string'], ['config', 'string'], ['image-repository', 'string'], ['output|o', 'string'], ['cri-socket', 'string'], ['feature-gates', 'string'], ['v', 'string']]))
    const version = flags['kubernetes-version'] ? (parseKube(flags['kubernetes-version']) || {text: flags['kubernetes-version']}).text : kube
    const repo = flags['image-repository'] || 'registry.k8s.io'
    const images = [...COMPONENTS, 'kube-proxy'].map((c) => `${repo}/${c}:${version}`)
    images.push(`${repo}/coredns/coredns:${coreDnsVersionFor(kube)}`, `${repo}/pause:3.10`, `${repo}/etcd:${etcdVersionFor(version)}`)
    if (rest[0] === 'list') out(images.join('\n') + '\n')
    else {
      if (!ctx.privileged) kubeadmFail('failed to create new CRI runtime service: validate service connection: validate CRI v1 runtime API for endpoint "unix:///var/run/containerd/containerd.sock": rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix /var/run/containerd/containerd.sock: connect: permission denied"')
      for (const i of images) out(`[config/images] Pulled ${i}\n`)
    }
    return
  }
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    out('kubeadm: easily bootstrap a secure Kubernetes cluster (homelab simulation: version, upgrade plan|apply|node, config images list|pull)\n')
    return
  }
  kubeadmFail(`unknown command "${[cmd, sub].filter(Boolean).join(' ')}" for "kubeadm"`)
}

// ----------------------------------------------------------------------------- kubelet, kubectl, crictl

async function kubeletMain(ctx, kube, args) {
  if (args.includes('--version') || args.includes('--version=true')) {
    out(`Kubernetes ${kube}\n`)
    return
  }
  if (args.includes('-h') || args.includes('--help')) {
    out('The kubelet is the primary "node agent" that runs on each node. (homelab simulation)\n')
    return
  }
  // Started by the service manager: report to the simulated API, unless this version crashes here.
  const crash = (ctx.knobs.kubeletCrashVersions || []).includes(kube)
  const stamp = new Date().toISOString()
  if (crash) {
    errw(`E${klogTime()} ${String(process.pid).padStart(7)} run.go:72] "command failed" err="failed to run Kubelet: homelab simulation: kubelet ${kube} crashes on this node"\n`)
    fs.rmSync(path.join(ctx.state, 'k3s.running'), {force: true})
    throw new Exit(1)
  }
  try {
    await control(ctx, 'POST', `/nodes/${encodeURIComponent(ctx.node.name)}/kubelet-started`, {version: kube, arch: ctx.node.arch})
  } catch (e) {
    errw(`E${klogTime()} ${String(process.pid).padStart(7)} run.go:72] "command failed" err="cannot report to the simulation control server: ${e.message}"\n`)
    throw new Exit(1)
  }
  fs.writeFileSync(path.join(ctx.state, 'k3s.running'), `${kube}\n`)
  errw(`I${klogTime()} ${String(process.pid).padStart(7)} server.go:484] "Kubelet version" kubeletVersion="${kube}" started="${stamp}"\n`)
}

function kubectlMain(ctx, kube, args) {
  if (args[0] === 'version' && (args.includes('--client') || args.includes('--client=true'))) {
    const k = parseKube(kube)
    const kustomize = k.minor >= 33 ? 'v5.6.0' : k.minor === 32 ? 'v5.5.0' : k.minor === 31 ? 'v5.4.2' : 'v5.0.4'
    const o = args.find((a) => a.startsWith('-o') || a.startsWith('--output'))
    const format = o ? (o.includes('=') ? o.slice(o.indexOf('=') + 1) : args[args.indexOf(o) + 1]) : ''
    const info = versionInfo(kube, DEB_ARCH[ctx.node.arch])
    if (format === 'json') out(JSON.stringify({clientVersion: info, kustomizeVersion: kustomize}, null, 2) + '\n')
    else if (format === 'yaml') out(`clientVersion:\n${yamlOf(info, '  ')}kustomizeVersion: ${kustomize}\n`)
    else out(`Client Version: ${kube}\nKustomize Version: ${kustomize}\n`)
    return
  }
  errw('error: homelab simulation: only `kubectl version --client` is simulated; talk to the API directly\n')
  throw new Exit(1)
}

/** The containers this node runs: its control plane's static pods (etcd when stacked). Ids are stable per node. */
function containers(ctx) {
  const names = ctx.node.controlPlane ? [...(ctx.node.etcd === 'stacked' ? ['etcd'] : []), ...COMPONENTS] : []
  return names.map((name) => ({name, id: crypto.createHash('sha256').update(`${ctx.node.name}/${name}`).digest('hex').slice(0, 13)}))
}

async function crictlMain(ctx, kube, args) {
  if (args[0] === '--version' || args[0] === '-v') {
    out(`crictl version ${kube}\n`)
    return
  }
  const fail = (msg) => {
    errw(`${msg}\n`)
    throw new Exit(1)
  }
  const socketDenied = 'validate service connection: validate CRI v1 runtime API for endpoint "unix:///var/run/containerd/containerd.sock": rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix /var/run/containerd/containerd.sock: connect: permission denied"'
  if (args[0] === 'ps') {
    if (!ctx.privileged) fail(`time="${new Date().toISOString()}" level=fatal msg="${socketDenied.replace(/"/g, '\\"')}"`)
    const {flags} = parseFlags(args.slice(1), flagSpec([['name', 'string'], ['quiet|q', 'bool'], ['state|s', 'string'], ['all|a', 'bool'], ['output|o', 'string']]))
    const state = String(flags.state || 'running').toLowerCase()
    let found = state === 'running' || flags.all ? containers(ctx) : []
    if (flags.name) found = found.filter((c) => new RegExp(flags.name).test(c.name))
    if (flags.quiet) out(found.map((c) => c.id).join('\n') + (found.length ? '\n' : ''))
    else out(tabwrite([['CONTAINER', 'IMAGE', 'CREATED', 'STATE', 'NAME', 'ATTEMPT', 'POD ID', 'POD'], ...found.map((c) => [c.id, 'sha256:0', 'About an hour ago', 'Running', c.name, '0', c.id.split('').reverse().join(''), `${c.name}-${ctx.node.name}`])]))
    return
  }
  if (args[0] === 'exec') {
    if (!ctx.privileged) fail(`time="${new Date().toISOString()}" level=fatal msg="${socketDenied.replace(/"/g, '\\"')}"`)
    let i = 1
    while (i < args.length && args[i].startsWith('-')) i++
    const id = args[i]
    const command = args.slice(i + 1)
    const container = containers(ctx).find((c) => c.id === id || (id && c.id.startsWith(id)))
    if (!container) fail(`time="${new Date().toISOString()}" level=fatal msg="execing command in container: rpc error: code = NotFound desc = could not find container \\"${id}\\""`)
    // The etcd image carries etcdctl; its hostPath mounts put the certificates and the data dir at the host's paths.
    if (container.name === 'etcd' && command[0] === 'etcdctl') return etcdctlMain(ctx, command.slice(1))
    fail(`time="${new Date().toISOString()}" level=fatal msg="execing command in container: exec failed: unable to start container process: exec: \\"${command[0]}\\": executable file not found in $PATH"`)
  }
  errw('crictl: homelab simulation: only --version, ps and exec are simulated\n')
  throw new Exit(1)
}

// ----------------------------------------------------------------------------- etcdctl, swapon

async function etcdctlMain(ctx, args) {
  const {flags, positional} = parseFlags(args, flagSpec([['endpoints', 'string'], ['cacert', 'string'], ['cert', 'string'], ['key', 'string'], ['write-out|w', 'string'], ['dial-timeout', 'string'], ['command-timeout', 'string'], ['insecure-skip-tls-verify', 'bool'], ['user', 'string'], ['password', 'string'], ['debug', 'bool'], ['cluster', 'bool']]))
  const [cmd, sub, file] = positional
  const etcdVersion = ctx.node.etcdctlVersion || '3.5.16'
  const fail = (msg) => {
    errw(`Error: ${msg}\n`)
    throw new Exit(1)
  }
  if (cmd === 'version') {
    out(`etcdctl version: ${etcdVersion}\nAPI version: 3.5\n`)
    return
  }
  const endpoints = (flags.endpoints || ctx.env.ETCDCTL_ENDPOINTS || '127.0.0.1:2379').split(',')
  for (const f of ['cacert', 'cert', 'key']) {
    const p = flags[f] || ctx.env[`ETCDCTL_${f.toUpperCase()}`]
    if (!p) continue
    if (!exists(p)) fail(`open ${p}: no such file or directory`)
    if (f === 'key' && !ctx.privileged) fail(`open ${p}: permission denied`)
  }
  const local = endpoints.every((e) => /^(https?:\/\/)?(127\.0\.0\.1|localhost|\[::1\]):2379$/.test(e) || e.includes(`${ctx.node.internalIP}:2379`))
  const secure = flags.cacert && flags.cert && flags.key
  const log = (level, caller, msg, extra = {}) => errw(JSON.stringify({level, ts: new Date().toISOString(), caller, msg, ...extra}) + '\n')
  if (!local || !ctx.node.etcd || ctx.node.etcd !== 'stacked' || !secure) {
    log('warn', 'v3@v3.5.16/retry_interceptor.go:62', 'retrying of unary invoker failed', {target: `etcd-endpoints://0xc000${Math.floor(Math.random() * 1e6)}/${endpoints[0]}`, attempt: 0, error: 'rpc error: code = DeadlineExceeded desc = latest balancer error: last connection error: connection error: desc = "transport: authentication handshake failed"'})
    fail('context deadline exceeded')
  }
  if (cmd === 'snapshot' && sub === 'save') {
    if (!file) fail('snapshot save expects one argument')
    const part = `${file}.part`
    try {
      fs.writeFileSync(part, `homelab simulation etcd snapshot of ${ctx.node.name}\ncreated: ${new Date().toISOString()}\n` + 'e'.repeat(2048) + '\n', {mode: 0o600})
    } catch (e) {
      fail(`could not open ${part} (${e.code === 'ENOENT' ? `open ${part}: no such file or directory` : `open ${part}: permission denied`})`)
    }
    log('info', 'snapshot/v3_snapshot.go:65', 'created temporary db file', {path: part})
    log('info', 'snapshot/v3_snapshot.go:73', 'fetching snapshot', {endpoint: endpoints[0]})
    fs.renameSync(part, file)
    log('info', 'snapshot/v3_snapshot.go:88', 'fetched snapshot', {endpoint: endpoints[0], size: '2.1 kB', took: 'now'})
    log('info', 'snapshot/v3_snapshot.go:97', 'saved', {path: file})
    out(`Snapshot saved at ${file}\n`)
    return
  }
  if (cmd === 'endpoint' && sub === 'health') {
    for (const e of endpoints) out(`${e} is healthy: successfully committed proposal: took = 9.2ms\n`)
    return
  }
  if (cmd === 'member' && sub === 'list') {
    const state = await control(ctx, 'GET', '/kubeadm/state')
    for (const n of state.nodes.filter((x) => x.components && x.components.etcd)) {
      const id = crypto.createHash('sha1').update(n.name).digest('hex').slice(0, 16)
      out(`${id}, started, ${n.name}, https://${n.internalIP}:2380, https://${n.internalIP}:2379, false\n`)
    }
    return
  }
  fail(`unknown command "${[cmd, sub].filter(Boolean).join(' ')}" for "etcdctl"`)
}

function swaponMain(ctx, args) {
  const swap = ctx.knobs.swap
  const noHeadings = args.includes('--noheadings') || args.includes('-n')
  if (args.includes('--show') || args.some((a) => a.startsWith('--show='))) {
    if (!swap) return
    if (!noHeadings) out('NAME      TYPE SIZE USED PRIO\n')
    out('/swapfile file   2G   0B   -2\n')
    return
  }
  if (args.includes('-s') || args.includes('--summary')) {
    if (!swap) return
    out('Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swapfile                               file\t\t2097148\t\t0\t\t-2\n')
    return
  }
  if (args.includes('--version') || args.includes('-V')) {
    out('swapon from util-linux 2.38.1\n')
    return
  }
  if (!ctx.privileged) {
    errw(`swapon: ${args[args.length - 1] || '/swapfile'}: swapon failed: Operation not permitted\n`)
    throw new Exit(255)
  }
  errw('swapon: homelab simulation: only --show and --summary are simulated\n')
  throw new Exit(1)
}

// ----------------------------------------------------------------------------- entry

async function main(argv) {
  const [toolArg, ...args] = argv
  const [tool, version] = String(toolArg || '').split('@')
  const ctx = nodeContext()
  logCommand(ctx, tool, args)
  switch (tool) {
    case 'apt-get': return aptGetMain(ctx, args)
    case 'apt-cache': return aptCacheMain(ctx, args)
    case 'apt-mark': return aptMarkMain(ctx, args)
    case 'apt-config': return aptConfigMain(ctx, args)
    case 'dpkg': case 'dpkg-query': return dpkgMain(ctx, tool, args)
    case 'rpm': return rpmMain(ctx, args)
    case 'dnf': return dnfMain(ctx, args)
    case 'kubeadm': return kubeadmMain(ctx, version, args)
    case 'kubelet': return kubeletMain(ctx, version, args)
    case 'kubectl': return kubectlMain(ctx, version, args)
    case 'crictl': return crictlMain(ctx, version, args)
    case 'etcdctl': return etcdctlMain(ctx, args)
    case 'swapon': return swaponMain(ctx, args)
    default:
      errw(`homelab simulation: unknown tool ${toolArg}\n`)
      throw new Exit(127)
  }
}

module.exports = {
  parseKube, compareKube, compareDeb, compareRpm, globToRegExp, aptListFileName, parseDeb822,
  upstreamVersion, debVersion, rpmEvr, kubeOfPackageVersion, etcdVersionFor, coreDnsVersionFor,
  CORE_PACKAGES, SUPPORT_PACKAGES, ALL_PACKAGES, DEB_ARCH, RPM_ARCH, unitFile, kubeletConfigYaml, installPayload,
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    if (e instanceof Exit) {
      process.exitCode = e.code
      return
    }
    process.stderr.write(`homelab simulation (${process.argv[2]}): ${e && e.stack ? e.stack : String(e)}\n`)
    process.exitCode = 1
  })
}
