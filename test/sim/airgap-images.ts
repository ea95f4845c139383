/**
 * What an air-gapped node needs besides the binary: the images archives and image lists each
 * k3s and rke2 release publishes, made up here, deterministic per version, arch and file.
 *
 * - k3s (scripts/package-airgap): `k3s-airgap-images-<arch>.tar.zst`, `.tar.gz` and `.tar`,
 *   and one `k3s-images.txt` per release (the list the archives were saved from).
 * - rke2 (scripts/build-images, package-images): per arch `rke2-images.linux-<arch>.tar.zst`
 *   and `.tar.gz` (core + the default Canal CNI: the legacy whole set), the split
 *   `rke2-images-core…` and `rke2-images-canal…`, each with its `.txt` list, and
 *   `rke2-images-all.linux-<arch>.txt` (every list, `sort -V | uniq`).
 *
 * An archive is not a real tar: `homelab-sim-images <distribution> <version> <arch> <file>\n`,
 * then bytes expanded from a sha256 seed (fast: one 64 KiB block made by hashing, copied), then
 * `\nhomelab-sim-images-end <sha256 of all before it>\n`; `size` bytes in all. The fake binary
 * (k3s-fake.ts) reads both lines back when it imports; the release server and the node fixture
 * share these bytes, so a node's pre-seeded archive has the sha256 the checksum file lists.
 */
import {createHash} from 'node:crypto'

import {ARCHES, canonicalVersion, distributionOf, IMAGES_ARCHIVE_END, IMAGES_ARCHIVE_MAGIC, type Distribution, type K3sArch} from './k3s-fake.js'

/** Size of every simulated images archive unless asked otherwise (`archiveBytes`). */
export const DEFAULT_ARCHIVE_BYTES = 2 * 1024 * 1024

export type ImagesArchiveExt = 'tar.zst' | 'tar.gz' | 'tar'

/** The compressions each distribution publishes its archives in (rke2 has no plain `.tar`). */
export const IMAGES_ARCHIVE_EXTS: Readonly<Record<Distribution, readonly ImagesArchiveExt[]>> = {
  k3s: ['tar.zst', 'tar.gz', 'tar'],
  rke2: ['tar.zst', 'tar.gz'],
}

/** rke2's archive sets: the whole default set (`images`: core + canal), and its two halves. */
const RKE2_SETS = ['images', 'images-core', 'images-canal'] as const
type Rke2Set = (typeof RKE2_SETS)[number]

function checkArch(distribution: Distribution, arch: K3sArch): void {
  if (!ARCHES[distribution].includes(arch)) throw new Error(`airgap images: ${distribution} publishes no images for architecture "${arch}"`)
}

/**
 * The archive a node uses by default: `k3s-airgap-images-<arch>.tar.zst`,
 * `rke2-images.linux-<arch>.tar.zst`; `ext` picks another compression.
 */
export function imagesArchiveName(distribution: Distribution, arch: K3sArch, ext: ImagesArchiveExt = 'tar.zst'): string {
  checkArch(distribution, arch)
  if (!IMAGES_ARCHIVE_EXTS[distribution].includes(ext)) throw new Error(`airgap images: ${distribution} publishes no .${ext} images archive`)
  return distribution === 'rke2' ? `rke2-images.linux-${arch}.${ext}` : `k3s-airgap-images-${arch}.${ext}`
}

/** Every images archive a release publishes for an architecture. */
export function imagesArchiveFiles(distribution: Distribution, arch: K3sArch): string[] {
  checkArch(distribution, arch)
  const exts = IMAGES_ARCHIVE_EXTS[distribution]
  if (distribution === 'k3s') return exts.map((ext) => imagesArchiveName('k3s', arch, ext))
  return RKE2_SETS.flatMap((set) => exts.map((ext) => `rke2-${set}.linux-${arch}.${ext}`))
}

/** The archive's first line. */
export function imagesArchiveHeader(distribution: Distribution, version: string, arch: K3sArch, file: string): string {
  return `${IMAGES_ARCHIVE_MAGIC} ${distribution} ${canonicalVersion(version, distribution)} ${arch} ${file}\n`
}

export interface ImagesArchiveHeader {
  distribution: Distribution
  version: string
  arch: K3sArch
  file: string
}

/** What an archive's first line says, or undefined when it has none (not one of ours, or garbled). */
export function parseImagesArchiveHeader(bytes: Buffer): ImagesArchiveHeader | undefined {
  const end = bytes.indexOf(0x0a)
  if (end < 0 || end > 512) return undefined
  const m = new RegExp(`^${IMAGES_ARCHIVE_MAGIC} (k3s|rke2) (\\S+) (amd64|arm64|arm|s390x) (\\S+)$`).exec(bytes.toString('latin1', 0, end))
  return m ? {distribution: m[1] as Distribution, version: m[2]!, arch: m[3] as K3sArch, file: m[4]!} : undefined
}

const BLOCK = 64 * 1024

/** `length` bytes that look random, from a seed: one hashed 64 KiB block, copied, each copy numbered. */
function expand(seed: string, length: number): Buffer {
  const block = Buffer.allocUnsafe(BLOCK)
  let h = createHash('sha256').update(seed).digest()
  for (let o = 0; o < BLOCK; o += 32) {
    h = createHash('sha256').update(h).digest()
    h.copy(block, o)
  }
  const out = Buffer.allocUnsafe(length)
  for (let o = 0, i = 0; o < length; o += BLOCK, i++) {
    block.copy(out, o, 0, Math.min(BLOCK, length - o))
    if (length - o >= 4) out.writeUInt32BE(i, o)
  }
  return out
}

// Recently made archives (a few, as a test rarely asks for more) and every hash computed.
const recent = new Map<string, Buffer>()
const RECENT_MAX = 8
const hashes = new Map<string, string>()

/**
 * The bytes of an images archive of a release (`file` as imagesArchiveFiles names it), `size`
 * bytes long (default DEFAULT_ARCHIVE_BYTES). The same arguments give the same bytes.
 */
export function imagesArchiveBytes(version: string, arch: K3sArch, file: string, size: number = DEFAULT_ARCHIVE_BYTES): Buffer {
  const distribution = distributionOf(version) ?? 'k3s'
  const canonical = canonicalVersion(version, distribution)
  if (!imagesArchiveFiles(distribution, arch).includes(file)) throw new Error(`airgap images: ${distribution} ${canonical} publishes no ${file}`)
  const key = `${canonical} ${arch} ${file} ${size}`
  const cached = recent.get(key)
  if (cached) {
    recent.delete(key)
    recent.set(key, cached)
    return cached
  }
  const header = Buffer.from(imagesArchiveHeader(distribution, canonical, arch, file))
  const trailerLength = `\n${IMAGES_ARCHIVE_END} \n`.length + 64
  if (!Number.isInteger(size) || size < header.length + trailerLength) {
    throw new Error(`airgap images: an archive of ${size} bytes cannot hold its header and trailer (${header.length + trailerLength} bytes)`)
  }
  const body = Buffer.concat([header, expand(key, size - header.length - trailerLength)])
  const bytes = Buffer.concat([body, Buffer.from(`\n${IMAGES_ARCHIVE_END} ${createHash('sha256').update(body).digest('hex')}\n`)])
  recent.set(key, bytes)
  if (recent.size > RECENT_MAX) recent.delete(recent.keys().next().value!)
  return bytes
}

/** The sha256 (hex) of imagesArchiveBytes(…), remembered once computed. */
export function imagesArchiveSha256(version: string, arch: K3sArch, file: string, size: number = DEFAULT_ARCHIVE_BYTES): string {
  const key = `${canonicalVersion(version)} ${arch} ${file} ${size}`
  let hex = hashes.get(key)
  if (!hex) {
    hex = createHash('sha256').update(imagesArchiveBytes(version, arch, file, size)).digest('hex')
    hashes.set(key, hex)
  }
  return hex
}

// ---- image lists ----------------------------------------------------------------------------

/** The value for a Kubernetes minor from a table of some minors (the nearest one below, else the first). */
function forMinor<T>(minor: number, table: Record<number, T>): T {
  const keys = Object.keys(table).map(Number).sort((a, b) => a - b)
  const key = [...keys].reverse().find((k) => k <= minor) ?? keys[0]!
  return table[key]!
}

/** A `-buildYYYYMMDD` date that moves on with the minor and the patch, as rebuilt images do. */
function buildDate(minor: number, patch: number): string {
  const date = new Date(Date.UTC(2024, 0, 10) + ((minor - 29) * 120 + patch * 7) * 86_400_000)
  return date.toISOString().slice(0, 10).replace(/-/g, '')
}

function versionParts(version: string): {canonical: string; minor: number; patch: number; dockerized: string} {
  const canonical = canonicalVersion(version)
  const m = /^v(\d+)\.(\d+)\.(\d+)\+/.exec(canonical)!
  return {canonical, minor: Number(m[2]), patch: Number(m[3]), dockerized: canonical.replace('+', '-')}
}

const PAUSE = 'docker.io/rancher/mirrored-pause:3.6'

/** k3s-images.txt: the packaged components' images, sorted as the real list is. */
function k3sImages(version: string): string[] {
  const {minor, patch} = versionParts(version)
  const t = forMinor(minor, {
    28: {coredns: '1.10.1', helm: 'v0.8.2', lb: 'v0.4.4', lpp: 'v0.0.24', metrics: 'v0.6.3', traefik: '2.10.5'},
    29: {coredns: '1.10.1', helm: 'v0.8.3', lb: 'v0.4.7', lpp: 'v0.0.26', metrics: 'v0.7.0', traefik: '2.10.7'},
    30: {coredns: '1.11.1', helm: 'v0.8.4', lb: 'v0.4.7', lpp: 'v0.0.28', metrics: 'v0.7.0', traefik: '2.10.7'},
    31: {coredns: '1.11.3', helm: 'v0.9.3', lb: 'v0.4.9', lpp: 'v0.0.30', metrics: 'v0.7.2', traefik: '2.11.10'},
    32: {coredns: '1.12.0', helm: 'v0.9.4', lb: 'v0.4.10', lpp: 'v0.0.31', metrics: 'v0.7.2', traefik: '3.3.2'},
    33: {coredns: '1.12.1', helm: 'v0.9.5', lb: 'v0.4.13', lpp: 'v0.0.31', metrics: 'v0.7.2', traefik: '3.3.6'},
  })
  return [
    `docker.io/rancher/klipper-helm:${t.helm}-build${buildDate(minor, patch)}`,
    `docker.io/rancher/klipper-lb:${t.lb}`,
    `docker.io/rancher/local-path-provisioner:${t.lpp}`,
    `docker.io/rancher/mirrored-coredns-coredns:${t.coredns}`,
    'docker.io/rancher/mirrored-library-busybox:1.36.1',
    `docker.io/rancher/mirrored-library-traefik:${t.traefik}`,
    `docker.io/rancher/mirrored-metrics-server:${t.metrics}`,
    PAUSE,
  ]
}

/** rke2's lists by set, in build-images order (the runtime image first). */
function rke2Images(version: string): Record<Rke2Set | 'cilium' | 'calico' | 'multus', string[]> {
  const {minor, patch, dockerized} = versionParts(version)
  const build = `build${buildDate(minor, patch)}`
  const t = forMinor(minor, {
    29: {coredns: 'v1.11.1', etcd: 'v3.5.9-k3s1', metrics: 'v0.6.3', calico: 'v3.27.0', flannel: 'v0.24.0', cilium: 'v1.14.5', nginx: 'v1.9.6-hardened1'},
    30: {coredns: 'v1.11.1', etcd: 'v3.5.13-k3s1', metrics: 'v0.7.1', calico: 'v3.27.3', flannel: 'v0.25.2', cilium: 'v1.15.5', nginx: 'v1.10.1-hardened1'},
    31: {coredns: 'v1.11.3', etcd: 'v3.5.16-k3s1', metrics: 'v0.7.1', calico: 'v3.28.2', flannel: 'v0.25.7', cilium: 'v1.16.3', nginx: 'v1.10.5-hardened4'},
    32: {coredns: 'v1.12.0', etcd: 'v3.5.18-k3s1', metrics: 'v0.7.2', calico: 'v3.29.1', flannel: 'v0.26.3', cilium: 'v1.16.6', nginx: 'v1.12.0-hardened1'},
    33: {coredns: 'v1.12.1', etcd: 'v3.5.21-k3s1', metrics: 'v0.7.2', calico: 'v3.29.3', flannel: 'v0.26.7', cilium: 'v1.17.3', nginx: 'v1.12.1-hardened2'},
  })
  const r = (name: string, tag: string) => `docker.io/rancher/${name}:${tag}`
  const core = [
    r('rke2-runtime', dockerized),
    r('hardened-kubernetes', `${dockerized}-${build}`),
    r('hardened-coredns', `${t.coredns}-${build}`),
    r('hardened-cluster-autoscaler', `v1.8.11-${build}`),
    r('hardened-dns-node-cache', `1.23.1-${build}`),
    r('hardened-etcd', `${t.etcd}-${build}`),
    r('hardened-k8s-metrics-server', `${t.metrics}-${build}`),
    r('hardened-addon-resizer', `1.8.20-${build}`),
    r('klipper-helm', `v0.9.3-${build}`),
    r('klipper-lb', 'v0.4.9'),
    PAUSE,
    r('rke2-cloud-provider', `v1.${minor}.2-0.20241016053446-0955fa330f90-${build}`),
    r('mirrored-sig-storage-snapshot-controller', 'v6.2.1'),
    r('mirrored-sig-storage-snapshot-validation-webhook', 'v6.2.2'),
    r('nginx-ingress-controller', t.nginx),
    r('mirrored-ingress-nginx-kube-webhook-certgen', 'v1.4.3'),
  ]
  const canal = [r('hardened-calico', `${t.calico}-${build}`), r('hardened-flannel', `${t.flannel}-${build}`)]
  return {
    images: [...core, ...canal],
    'images-core': core,
    'images-canal': canal,
    cilium: [r('mirrored-cilium-cilium', t.cilium), r('mirrored-cilium-operator-generic', t.cilium), r('hardened-cni-plugins', `v1.5.1-${build}`)],
    calico: [r('mirrored-calico-operator', 'v1.34.5'), r('mirrored-calico-node', t.calico), r('mirrored-calico-cni', t.calico)],
    multus: [r('hardened-multus-cni', `v4.1.3-${build}`), r('hardened-whereabouts', `v0.8.0-${build}`), r('hardened-cni-plugins', `v1.5.1-${build}`)],
  }
}

/** `sort -V | uniq`, near enough for image references. */
function sortVersionUnique(lines: string[]): string[] {
  return [...new Set(lines)].sort((a, b) => a.localeCompare(b, 'en', {numeric: true}))
}

/**
 * Which rke2 list: `default` (rke2-images.linux-<arch>.txt, what the default archive holds),
 * `all`, `core` or `canal`. k3s has one list whatever is asked.
 */
export type ImageListKind = 'default' | 'all' | 'core' | 'canal'

/** The image references a release needs (k3s-images.txt; for rke2 the list asked for). */
export function imageListFor(version: string, arch: K3sArch = 'amd64', list: ImageListKind = 'default'): string[] {
  const distribution = distributionOf(version) ?? 'k3s'
  checkArch(distribution, arch)
  if (distribution === 'k3s') return k3sImages(version)
  const sets = rke2Images(version)
  if (list === 'all') return sortVersionUnique(Object.values(sets).flat())
  return sets[list === 'default' ? 'images' : (`images-${list}` as const)]
}

/**
 * The image lists a release publishes for an architecture: file name → content. k3s's
 * `k3s-images.txt` is one per release, not per arch (returned for every arch alike).
 */
export function imageListFiles(version: string, arch: K3sArch): Record<string, string> {
  const distribution = distributionOf(version) ?? 'k3s'
  const text = (lines: string[]) => lines.map((l) => `${l}\n`).join('')
  if (distribution === 'k3s') return {'k3s-images.txt': text(imageListFor(version, arch))}
  return {
    [`rke2-images.linux-${arch}.txt`]: text(imageListFor(version, arch, 'default')),
    [`rke2-images-core.linux-${arch}.txt`]: text(imageListFor(version, arch, 'core')),
    [`rke2-images-canal.linux-${arch}.txt`]: text(imageListFor(version, arch, 'canal')),
    [`rke2-images-all.linux-${arch}.txt`]: text(imageListFor(version, arch, 'all')),
  }
}

/** The sandbox (pause) image every pod needs first: what a node without its images fails to pull. */
export function sandboxImage(version: string): string {
  return imageListFor(version).find((image) => image.includes('/mirrored-pause:')) ?? PAUSE
}
