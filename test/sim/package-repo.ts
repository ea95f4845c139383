/**
 * A loopback stand-in for `https://pkgs.k8s.io` (one package repository per Kubernetes minor)
 * and `https://dl.k8s.io/release` (the one-line release files), on one plain-HTTP server:
 *
 *   <origin>/core:/stable:/v1.NN/deb/   InRelease, Release, Release.gpg, Release.key, Packages,
 *                                       Packages.gz and <arch>/<pkg>_<version>_<arch>.deb
 *   <origin>/core:/stable:/v1.NN/rpm/   repodata/repomd.xml (+ .asc, .key), repodata/<sha>-primary.xml.gz
 *                                       and <arch>/<pkg>-<version>-<release>.<arch>.rpm
 *   <origin>/release/stable.txt         newest release without a pre-release part
 *   <origin>/release/latest.txt         newest release of all
 *   <origin>/release/stable-1.NN.txt    newest release of that minor (latest-1.NN.txt: pre-releases too)
 *
 * Like the real hosts, both answer with a 302 to a CDN path on the same server
 * (`/repositories/isv:/kubernetes:/core:/stable:/v1.NN/...`, `/cdn/release/...`), so a client that
 * does not follow redirects fails here as it would there. A minor without any offered release
 * has no repository: 404, as pkgs.k8s.io answers for a minor that does not exist yet; an
 * unknown release file is 404 with GCS's NoSuchKey body.
 *
 * Every offered release `v1.NN.P` puts kubeadm, kubelet and kubectl `1.NN.P-1.1` (deb) /
 * `1.NN.P-150500.1.1` (rpm) into the v1.NN repository, for amd64, arm64 and s390x; each
 * repository also carries one cri-tools and one kubernetes-cni. Pre-releases appear only in the
 * release files. Package payloads are small text files, with true sizes and hashes in the
 * indexes (the fake apt-get and dnf verify them). Signatures are placeholders: nothing checks them.
 *
 * Faults: breakMinor(minor, 'not-found' | 'unreachable' | 'corrupt'), repairMinor(minor).
 * Every request is logged in `requests`.
 */
import {createHash} from 'node:crypto'
import type {IncomingMessage, ServerResponse} from 'node:http'
import {gzipSync} from 'node:zlib'

import {kubeadmTools, type KubeadmArch} from './kubeadm-fake.js'
import {listenOnLoopback} from './loopback-http.js'

const tools = kubeadmTools()

export type RepoFormat = 'deb' | 'rpm'
export type MinorFault = 'not-found' | 'unreachable' | 'corrupt'

export interface PackageRepoOptions {
  /** Kubernetes releases offered, e.g. `['v1.31.4', 'v1.32.4']` (pre-releases only in the release files). */
  releases: readonly string[]
  /** Default amd64, arm64, s390x. */
  arches?: readonly KubeadmArch[]
}

export interface RepoRequest {
  time: number
  method: string
  /** As received (still percent-encoded). */
  path: string
  status: number
}

export interface RepoPackage {
  name: string
  /** Kubernetes release it belongs to (cri-tools, kubernetes-cni: the newest of the minor). */
  kube: string
  /** `1.31.4-1.1` (deb) or `1.31.4-150500.1.1` (rpm). */
  version: string
  arch: string
  /** Path below the repository's base URL. */
  file: string
  bytes: Buffer
  sha256: string
}

export interface PackageRepo {
  /** `http://127.0.0.1:PORT`: the pkgs.k8s.io stand-in. */
  readonly origin: string
  /** `http://127.0.0.1:PORT/release`: the dl.k8s.io/release stand-in (for `install.channelUrl`). */
  readonly releaseUrl: string
  readonly requests: RepoRequest[]
  /** `http://127.0.0.1:PORT/core:/stable:/v1.31/deb/` for `v1.31.4` or `v1.31`. */
  repoUrl(versionOrMinor: string, format: RepoFormat): string
  /** Offered releases, oldest first. */
  releases(): string[]
  addRelease(version: string): void
  /** The packages of one minor's repository. */
  packages(versionOrMinor: string, format: RepoFormat): RepoPackage[]
  /** What `<releaseUrl>/<name>.txt` answers (a line), or undefined for 404. */
  releaseFile(name: string): string | undefined
  /** Overrides one release file (`stable`, `stable-1.32`, …); null: answers 404; undefined: back to computed. */
  setReleaseFile(name: string, text: string | null | undefined): void
  /** not-found: the minor's repository answers 404; unreachable: connections are reset; corrupt: package bytes differ from the index. */
  breakMinor(versionOrMinor: string, fault: MinorFault): void
  repairMinor(versionOrMinor: string): void
  stop(): Promise<void>
}

/** `v1.31.4` or `v1.31` or `1.31` → `v1.31`. */
export function minorOf(versionOrMinor: string): string {
  const m = /^v?(\d+)\.(\d+)(?:\.\d+(?:-[0-9A-Za-z.]+)?)?$/.exec(versionOrMinor.trim())
  if (!m) throw new Error(`package repo: "${versionOrMinor}" names no Kubernetes minor`)
  return `v${m[1]}.${m[2]}`
}

const RPM_ARCH: Record<KubeadmArch, string> = tools.RPM_ARCH
const DESCRIPTIONS: Record<string, string> = {
  kubeadm: 'Command-line utility for administering a Kubernetes cluster',
  kubelet: 'Node agent for Kubernetes clusters',
  kubectl: 'Command-line utility for interacting with a Kubernetes cluster',
  'cri-tools': 'Command-line utility for interacting with a container runtime',
  'kubernetes-cni': 'Binaries required to provision kubernetes container networking',
}

function sha256(bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex')
}

function payload(name: string, version: string, arch: string, format: RepoFormat): Buffer {
  return Buffer.from(`homelab simulation: the ${format} package ${name} ${version} for ${arch}. Not a real package.\n${'.'.repeat(512)}\n`)
}

/** The packages of one minor: the three core packages per release, one cri-tools and kubernetes-cni. */
function buildPackages(minor: string, releases: readonly string[], arches: readonly KubeadmArch[], format: RepoFormat): RepoPackage[] {
  const mine = releases.filter((r) => minorOf(r) === minor && !tools.parseKube(r)!.pre)
  if (mine.length === 0) return []
  const newest = mine[mine.length - 1]!
  const out: RepoPackage[] = []
  const entries: Array<[string, string]> = [
    ...mine.flatMap((r) => tools.CORE_PACKAGES.map((p): [string, string] => [p, r])),
    ...tools.SUPPORT_PACKAGES.map((p): [string, string] => [p, newest]),
  ]
  for (const [name, kube] of entries) {
    for (const arch of arches) {
      const a = format === 'deb' ? arch : RPM_ARCH[arch]
      let version: string
      let file: string
      if (format === 'deb') {
        version = tools.debVersion(name, kube)
        file = `${a}/${name}_${version}_${a}.deb`
      } else {
        const evr = tools.rpmEvr(name, kube)
        version = `${evr.version}-${evr.release}`
        file = `${a}/${name}-${version}.${a}.rpm`
      }
      const bytes = payload(name, version, a, format)
      out.push({name, kube, version, arch: a, file, bytes, sha256: sha256(bytes)})
    }
  }
  return out
}

function debIndex(minor: string, packages: RepoPackage[], arches: readonly KubeadmArch[]): Map<string, Buffer> {
  const stanza = (p: RepoPackage) => {
    const depends = p.name === 'kubeadm' ? 'Depends: cri-tools (>= 1.30.0)\n' : p.name === 'kubelet' ? 'Depends: iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), iproute2, socat, util-linux, mount, ethtool, ebtables, conntrack\n' : ''
    return `Package: ${p.name}\nArchitecture: ${p.arch}\nVersion: ${p.version}\nPriority: optional\nSection: admin\n` +
      `Maintainer: Kubernetes Authors <dev@kubernetes.io>\nInstalled-Size: ${Math.ceil(p.bytes.length / 1024)}\n${depends}` +
      `Filename: ${p.file}\nSize: ${p.bytes.length}\nMD5sum: ${createHash('md5').update(p.bytes).digest('hex')}\n` +
      `SHA1: ${createHash('sha1').update(p.bytes).digest('hex')}\nSHA256: ${p.sha256}\nDescription: ${DESCRIPTIONS[p.name]}\n ${DESCRIPTIONS[p.name]}.\n`
  }
  const packagesText = Buffer.from(packages.map(stanza).join('\n'))
  const gz = gzipSync(packagesText)
  const sums = (algo: string, files: Array<[string, Buffer]>) => files.map(([n, b]) => ` ${createHash(algo).update(b).digest('hex')} ${b.length} ${n}`).join('\n')
  const indexes: Array<[string, Buffer]> = [['Packages', packagesText], ['Packages.gz', gz]]
  const label = `isv:kubernetes:core:stable:${minor}`
  const release = `Origin: obs://build.opensuse.org/${label}/deb\nLabel: ${label}\nArchitectures: ${arches.join(' ')}\n` +
    `Date: ${new Date().toUTCString().replace('GMT', 'UTC')}\nMD5Sum:\n${sums('md5', indexes)}\nSHA1:\n${sums('sha1', indexes)}\nSHA256:\n${sums('sha256', indexes)}\n`
  const signature = `-----BEGIN PGP SIGNATURE-----\n\n${Buffer.from(`homelab simulation signature of ${label}`).toString('base64')}\n-----END PGP SIGNATURE-----\n`
  const files = new Map<string, Buffer>([
    ['Packages', packagesText],
    ['Packages.gz', gz],
    ['Release', Buffer.from(release)],
    ['Release.gpg', Buffer.from(signature)],
    ['InRelease', Buffer.from(`-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n${release}${signature}`)],
    ['Release.key', Buffer.from(publicKey(label))],
  ])
  for (const p of packages) files.set(p.file, p.bytes)
  return files
}

function publicKey(label: string): string {
  return `-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n${Buffer.from(`homelab simulation key for ${label}`).toString('base64')}\n-----END PGP PUBLIC KEY BLOCK-----\n`
}

function rpmIndex(minor: string, packages: RepoPackage[]): Map<string, Buffer> {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')
  const now = Math.floor(Date.now() / 1000)
  const entry = (p: RepoPackage) => {
    const [ver, rel] = [p.version.replace(/-[^-]*$/, ''), p.version.replace(/^.*-/, '')]
    return `<package type="rpm">\n  <name>${p.name}</name>\n  <arch>${p.arch}</arch>\n  <version epoch="0" ver="${ver}" rel="${rel}"/>\n` +
      `  <checksum type="sha256" pkgid="YES">${p.sha256}</checksum>\n  <summary>${esc(DESCRIPTIONS[p.name]!)}</summary>\n` +
      `  <description>${esc(DESCRIPTIONS[p.name]!)}.</description>\n  <packager>https://bugs.opensuse.org</packager>\n  <url>https://kubernetes.io</url>\n` +
      `  <time file="${now}" build="${now}"/>\n  <size package="${p.bytes.length}" installed="${p.bytes.length * 4}" archive="${p.bytes.length * 4}"/>\n` +
      `  <location href="${p.file}"/>\n  <format>\n    <rpm:license>Apache-2.0</rpm:license>\n    <rpm:vendor>obs://build.opensuse.org/isv:kubernetes</rpm:vendor>\n  </format>\n</package>\n`
  }
  const primary = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="${packages.length}">\n${packages.map(entry).join('')}</metadata>\n`)
  const gz = gzipSync(primary)
  const href = `repodata/${sha256(gz)}-primary.xml.gz`
  const repomd = `<?xml version="1.0" encoding="UTF-8"?>\n<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">\n` +
    `  <revision>${now}</revision>\n  <data type="primary">\n    <checksum type="sha256">${sha256(gz)}</checksum>\n    <open-checksum type="sha256">${sha256(primary)}</open-checksum>\n` +
    `    <location href="${href}"/>\n    <timestamp>${now}</timestamp>\n    <size>${gz.length}</size>\n    <open-size>${primary.length}</open-size>\n  </data>\n</repomd>\n`
  const label = `isv:kubernetes:core:stable:${minor}`
  const files = new Map<string, Buffer>([
    ['repodata/repomd.xml', Buffer.from(repomd)],
    ['repodata/repomd.xml.asc', Buffer.from(`-----BEGIN PGP SIGNATURE-----\n\n${Buffer.from(label).toString('base64')}\n-----END PGP SIGNATURE-----\n`)],
    ['repodata/repomd.xml.key', Buffer.from(publicKey(label))],
    [href, gz],
  ])
  for (const p of packages) files.set(p.file, p.bytes)
  return files
}

const NO_SUCH_KEY = `<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>`

export async function startPackageRepo(options: PackageRepoOptions): Promise<PackageRepo> {
  const arches = options.arches ?? (['amd64', 'arm64', 's390x'] as const)
  const offered: string[] = []
  const faults = new Map<string, MinorFault>()
  const overrides = new Map<string, string | null>()
  const requests: RepoRequest[] = []
  // Built on first use per minor and format, dropped when the releases change.
  const indexes = new Map<string, {packages: RepoPackage[]; files: Map<string, Buffer>}>()

  const addRelease = (version: string): void => {
    const parsed = tools.parseKube(version)
    if (!parsed) throw new Error(`package repo: "${version}" is not a Kubernetes version like v1.31.4`)
    if (offered.includes(parsed.text)) return
    offered.push(parsed.text)
    offered.sort((a, b) => tools.compareKube(a, b))
    indexes.clear()
  }
  for (const r of options.releases) addRelease(r)

  const repository = (minor: string, format: RepoFormat) => {
    const key = `${minor}/${format}`
    let built = indexes.get(key)
    if (!built) {
      const packages = buildPackages(minor, offered, arches, format)
      built = {packages, files: packages.length === 0 ? new Map() : format === 'deb' ? debIndex(minor, packages, arches) : rpmIndex(minor, packages)}
      indexes.set(key, built)
    }
    return built
  }

  const releaseFile = (name: string): string | undefined => {
    if (overrides.has(name)) return overrides.get(name) ?? undefined
    const m = /^(stable|latest)(?:-(\d+)\.(\d+))?$/.exec(name)
    if (!m) return undefined
    const pool = offered.filter((v) => (m[1] === 'latest' || !tools.parseKube(v)!.pre) && (m[2] === undefined || minorOf(v) === `v${m[2]}.${m[3]}`))
    return pool.at(-1)
  }

  const http = await listenOnLoopback(handle)
  const {origin} = http

  function send(res: ServerResponse, record: RepoRequest, status: number, body: Buffer | string, headers: Record<string, string> = {}): void {
    record.status = status
    const bytes = typeof body === 'string' ? Buffer.from(body) : body
    res.writeHead(status, {'content-length': String(bytes.length), ...headers})
    res.end(record.method === 'HEAD' ? undefined : bytes)
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const rawPath = (req.url ?? '/').split('?')[0]!
    const record: RepoRequest = {time: Date.now(), method: req.method ?? '', path: rawPath, status: 0}
    requests.push(record)
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, record, 405, 'method not allowed\n', {allow: 'GET, HEAD'})
    let path: string
    try {
      path = decodeURIComponent(rawPath)
    } catch {
      return send(res, record, 400, 'bad request\n')
    }
    const release = /^\/(cdn\/)?release\/([^/]+)\.txt$/.exec(path)
    if (release) {
      if (!release[1]) return send(res, record, 302, '', {location: `${origin}/cdn/release/${release[2]}.txt`})
      const text = releaseFile(release[2]!)
      if (text === undefined) return send(res, record, 404, NO_SUCH_KEY, {'content-type': 'application/xml; charset=UTF-8'})
      return send(res, record, 200, `${text}\n`, {'content-type': 'text/plain'})
    }
    const repo = /^\/(repositories\/isv:\/kubernetes:\/)?core:\/stable:\/(v\d+\.\d+)\/(deb|rpm)\/(.*)$/.exec(path)
    if (!repo) return send(res, record, 404, 'Not Found\n', {'content-type': 'text/plain'})
    const [, cdn, minor, format, file] = repo as unknown as [string, string | undefined, string, RepoFormat, string]
    const fault = faults.get(minor)
    if (fault === 'unreachable') {
      record.status = 0
      req.socket.destroy()
      return
    }
    if (!cdn) return send(res, record, 302, '', {location: `${origin}/repositories/isv:/kubernetes:/core:/stable:/${minor}/${format}/${file}`})
    const built = fault === 'not-found' ? undefined : repository(minor, format)
    const bytes = built?.files.get(file)
    if (!bytes) return send(res, record, 404, '<html><body><h1>404 Not Found</h1></body></html>\n', {'content-type': 'text/html'})
    const isPackage = built!.packages.some((p) => p.file === file)
    const body = fault === 'corrupt' && isPackage ? Buffer.concat([bytes, Buffer.from('corrupted in transit\n')]) : bytes
    send(res, record, 200, body, {'content-type': 'application/octet-stream'})
  }

  return {
    origin,
    releaseUrl: `${origin}/release`,
    requests,
    repoUrl: (v, format) => `${origin}/core:/stable:/${minorOf(v)}/${format}/`,
    releases: () => [...offered],
    addRelease,
    packages: (v, format) => repository(minorOf(v), format).packages,
    releaseFile,
    setReleaseFile(name, text) {
      if (text === undefined) overrides.delete(name)
      else overrides.set(name, text)
    },
    breakMinor(v, fault) {
      faults.set(minorOf(v), fault)
    },
    repairMinor(v) {
      faults.delete(minorOf(v))
    },
    async stop() {
      await http.close()
    },
  }
}
