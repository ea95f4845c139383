/**
 * A loopback stand-in for `https://github.com/k3s-io/k3s/releases/download` and
 * `https://github.com/rancher/rke2/releases/download`; each version is served as its
 * distribution publishes it (the version says which: `+k3sN` or `+rke2rN`), at
 * `<url>/<version>/<file>` with the version as `%2B` or `+`:
 * - k3s: the fake binaries (`k3s`, `k3s-arm64`, `k3s-armhf`, `k3s-s390x`), the images archives
 *   `k3s-airgap-images-<arch>.tar.zst|.tar.gz|.tar` and the release's `k3s-images.txt`.
 * - rke2 (amd64, arm64, s390x): the bare binary `rke2.linux-<arch>`, the install tarball
 *   `rke2.linux-<arch>.tar.gz` (a real gzipped tar as scripts/package-bundle makes it: `bin/rke2`,
 *   the same bytes as the bare binary, the killall/uninstall scripts, and
 *   `lib/systemd/system/rke2-{server,agent}.{service,env}`), the images archives
 *   `rke2-images[-core|-canal].linux-<arch>.tar.zst|.tar.gz` with their `.txt` lists, and
 *   `rke2-images-all.linux-<arch>.txt`.
 * - both: `sha256sum-<arch>.txt`, `<hex>  <file>` for every asset of that arch, sorted by name
 *   (rke2's scripts/checksum lists `ls` of the artifacts; k3s-images.txt names no arch).
 *
 * The images archives (airgap-images.ts: a header line the fake binary reads, `archiveBytes`
 * of deterministic bytes) are made when first asked for, so a server of many versions starts
 * at once; their hashes are remembered.
 *
 * Like GitHub, a download answers 302 to an object URL (here on the same server), so a client
 * that does not follow redirects fails here as it would there; `redirect: false` serves the
 * bytes directly. Faults for tests: corrupt(), slow(), failNext(). Every request is logged.
 */
import {createHash} from 'node:crypto'
import type {IncomingMessage, ServerResponse} from 'node:http'
import {gzipSync} from 'node:zlib'

import {DEFAULT_ARCHIVE_BYTES, imageListFiles, imagesArchiveBytes, imagesArchiveFiles, imagesArchiveSha256} from './airgap-images.js'
import {listenOnLoopback} from './loopback-http.js'
import {ARCHES, canonicalVersion, distributionOf, fakeK3sBinary, K3S_ARCHES, systemdUnit, type Distribution, type K3sArch} from './k3s-fake.js'

export {imageListFor, imagesArchiveName, type ImageListKind, type ImagesArchiveExt} from './airgap-images.js'

/** The release asset holding the bare binary for an architecture. */
export function releaseAssetName(arch: K3sArch, distribution: Distribution = 'k3s'): string {
  if (distribution === 'rke2') return `rke2.linux-${arch}`
  return {amd64: 'k3s', arm64: 'k3s-arm64', arm: 'k3s-armhf', s390x: 'k3s-s390x'}[arch]
}

/** rke2's install tarball for an architecture (`bin/rke2` and the unit files). */
export function tarballAssetName(arch: K3sArch): string {
  return `rke2.linux-${arch}.tar.gz`
}

/** The checksum file covering an architecture's assets. */
export function checksumFileName(arch: K3sArch): string {
  return `sha256sum-${arch}.txt`
}

export interface ReleaseServerOptions {
  versions: readonly string[]
  /** Architectures published per version (default all: amd64, arm64, arm, s390x; rke2 has no arm). */
  arches?: readonly K3sArch[]
  /** Answer `/download/...` with a 302 to `/objects/...` as GitHub does (default true). */
  redirect?: boolean
  /** Size of each images archive (default 2 MiB); nodes pre-seeded with an archive must use the same. */
  archiveBytes?: number
}

export interface ReleaseRequest {
  /** ms since the epoch when the request arrived. */
  time: number
  method: string
  /** The path as received (still percent-encoded). */
  path: string
  /** `download` for `/download/...`, `object` for the redirect target, `other` for anything else. */
  hop: 'download' | 'object' | 'other'
  /** Canonical (`+`) version, when the path named one. */
  version?: string
  file?: string
  /** HTTP status sent, or 0 when the connection was reset on purpose. */
  status: number
  /** Body bytes written. */
  bytes: number
  /** A `Range: bytes=N-` request: N. */
  rangeFrom?: number
  /** True when a 200 GET delivered the whole body (or a 206 the rest of it). */
  complete: boolean
}

export interface ReleaseServer {
  /** `http://127.0.0.1:PORT/download`: the release base URL for the product's config. */
  readonly url: string
  /** `http://127.0.0.1:PORT`. */
  readonly origin: string
  readonly requests: ReleaseRequest[]
  /** Size of each images archive served. */
  readonly archiveBytes: number
  versions(): string[]
  addVersion(version: string): void
  /** The true bytes of an asset (not corrupted), or undefined when not published. */
  asset(version: string, file: string): Buffer | undefined
  /** The true sha256 (hex) of an asset. */
  sha256(version: string, file: string): string
  /** Serve other bytes for this asset than its checksum line says (a checksum file: wrong hashes). */
  corrupt(version: string, file: string): void
  /** Delay every response by ms (0: no delay). */
  slow(ms: number): void
  /** The next whole-file download of a larger file sends only this many bytes, then the connection drops. */
  truncateNext(bytes: number): void
  /** The next n requests answer this status (or have their connection reset). */
  failNext(n: number, status?: number | 'reset'): void
  /** Undo corrupt(), slow() and failNext(). */
  clearFaults(): void
  /** Count of complete 200 GETs, optionally for one version and/or file. */
  downloads(filter?: {version?: string; file?: string}): number
  stop(): Promise<void>
}

/** An asset's bytes, or how to make them when asked (images archives, checksum files). */
type Asset = Buffer | (() => Buffer)

interface Release {
  assets: Map<string, Asset>
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex')
}

function buildRelease(version: string, arches: readonly K3sArch[], archiveBytes: number): Release {
  const distribution = distributionOf(version) ?? 'k3s'
  const assets = new Map<string, Asset>()
  for (const arch of arches.filter((a) => ARCHES[distribution].includes(a))) {
    const binary = releaseAssetName(arch, distribution)
    const files = new Map<string, Buffer>()
    const bytes = fakeK3sBinary({version, arch, distribution})
    files.set(binary, bytes)
    if (distribution === 'rke2') files.set(tarballAssetName(arch), rke2Tarball(version, bytes))
    for (const [name, text] of Object.entries(imageListFiles(version, arch))) files.set(name, Buffer.from(text))
    const archives = imagesArchiveFiles(distribution, arch)
    const hashes = new Map<string, () => string>([...files].map(([name, b]) => [name, () => sha256(b)]))
    for (const name of archives) hashes.set(name, () => imagesArchiveSha256(version, arch, name, archiveBytes))
    // The per-arch list names no other arch (k3s-images.txt is the release's, not the arch's).
    const listed = [...hashes.keys()].filter((name) => name !== 'k3s-images.txt').sort()
    let sums: Buffer | undefined
    for (const [name, b] of files) assets.set(name, b)
    for (const name of archives) assets.set(name, () => imagesArchiveBytes(version, arch, name, archiveBytes))
    assets.set(checksumFileName(arch), () => (sums ??= Buffer.from(listed.map((name) => `${hashes.get(name)!()}  ${name}\n`).join(''))))
  }
  return {assets}
}

/** The entries of rke2.linux-<arch>.tar.gz: path → [mode, content]; directories end in `/`. */
function rke2Bundle(version: string, binary: Buffer): Array<[string, number, Buffer]> {
  const script = (name: string) => Buffer.from(`#!/bin/sh\n# homelab simulation: stand-in for ${name} of rke2 ${version}. Does nothing.\nexit 0\n`)
  const entries: Array<[string, number, Buffer]> = [
    ['bin/', 0o755, Buffer.alloc(0)],
    ['bin/rke2', 0o755, binary],
    ['bin/rke2-killall.sh', 0o755, script('rke2-killall.sh')],
    ['bin/rke2-uninstall.sh', 0o755, script('rke2-uninstall.sh')],
    ['lib/', 0o755, Buffer.alloc(0)],
    ['lib/systemd/', 0o755, Buffer.alloc(0)],
    ['lib/systemd/system/', 0o755, Buffer.alloc(0)],
  ]
  for (const role of ['agent', 'server'] as const) {
    entries.push([`lib/systemd/system/rke2-${role}.env`, 0o644, Buffer.from('HOME=/root\n')])
    entries.push([`lib/systemd/system/rke2-${role}.service`, 0o644, Buffer.from(systemdUnit('rke2', role, '/usr/local/bin/rke2'))])
  }
  entries.push(['share/', 0o755, Buffer.alloc(0)], ['share/rke2/', 0o755, Buffer.alloc(0)])
  entries.push(['share/rke2/LICENSE.txt', 0o644, Buffer.from('homelab simulation: the rke2 license would be here (Apache-2.0).\n')])
  return entries
}

/** A gzipped POSIX ustar archive with fixed owner and time, so its sha256 is stable per version. */
function rke2Tarball(version: string, binary: Buffer): Buffer {
  const mtime = 1_731_974_400 // 2024-11-19, a fixed build time
  const blocks: Buffer[] = []
  for (const [name, mode, content] of rke2Bundle(version, binary)) {
    const header = Buffer.alloc(512)
    const field = (offset: number, length: number, value: string) => header.write(value, offset, length, 'ascii')
    const octal = (offset: number, length: number, value: number) => field(offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`)
    field(0, 100, name)
    octal(100, 8, mode)
    octal(108, 8, 0)
    octal(116, 8, 0)
    octal(124, 12, content.length)
    octal(136, 12, mtime)
    field(148, 8, '        ')
    field(156, 1, name.endsWith('/') ? '5' : '0')
    field(257, 8, 'ustar\u000000')
    field(265, 32, 'root')
    field(297, 32, 'root')
    let sum = 0
    for (const byte of header) sum += byte
    field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `)
    blocks.push(header, content, Buffer.alloc((512 - (content.length % 512)) % 512))
  }
  blocks.push(Buffer.alloc(1024))
  return gzipSync(Buffer.concat(blocks), {level: 9})
}

/** Different bytes for the same asset: binaries get a trailer, checksum files wrong hashes. */
function corrupted(file: string, bytes: Buffer): Buffer {
  if (file.startsWith('sha256sum-')) {
    const text = bytes.toString('utf8').replace(/^([0-9a-f])/gm, (d) => ((parseInt(d, 16) + 1) % 16).toString(16))
    return Buffer.from(text)
  }
  return Buffer.concat([bytes, Buffer.from('\n// corrupted in transit\n')])
}

export async function startReleaseServer(options: ReleaseServerOptions): Promise<ReleaseServer> {
  const arches = options.arches ?? K3S_ARCHES
  const redirect = options.redirect ?? true
  const archiveBytes = options.archiveBytes ?? DEFAULT_ARCHIVE_BYTES
  const releases = new Map<string, Release>()
  const corruptKeys = new Set<string>()
  const requests: ReleaseRequest[] = []
  const timers = new Set<NodeJS.Timeout>()
  let delayMs = 0
  let failures = 0
  let failStatus: number | 'reset' = 500
  let truncateAfter: number | undefined

  const addVersion = (version: string): void => {
    const canonical = canonicalVersion(version)
    if (!releases.has(canonical)) releases.set(canonical, buildRelease(canonical, arches, archiveBytes))
  }
  for (const v of options.versions) addVersion(v)

  const lookup = (version: string, file: string): Buffer | undefined => {
    let canonical: string
    try {
      canonical = canonicalVersion(version)
    } catch {
      return undefined
    }
    const asset = releases.get(canonical)?.assets.get(file)
    return typeof asset === 'function' ? asset() : asset
  }

  const http = await listenOnLoopback(handle)
  const {origin} = http

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawPath = (req.url ?? '/').split('?')[0]!
    const record: ReleaseRequest = {time: Date.now(), method: req.method ?? '', path: rawPath, hop: 'other', status: 0, bytes: 0, complete: false}
    requests.push(record)
    const segments = rawPath.split('/').slice(1)
    let decoded: string[] | undefined
    try {
      decoded = segments.map((s) => decodeURIComponent(s))
    } catch {
      decoded = undefined
    }
    if (decoded && decoded.length === 3 && (decoded[0] === 'download' || decoded[0] === 'objects')) {
      record.hop = decoded[0] === 'download' ? 'download' : 'object'
      record.file = decoded[2]
      try {
        record.version = canonicalVersion(decoded[1]!)
      } catch {
        record.version = decoded[1]
      }
    }

    if (delayMs > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          timers.delete(t)
          resolve()
        }, delayMs)
        timers.add(t)
      })
      if (res.destroyed) return
    }
    if (failures > 0) {
      failures -= 1
      if (failStatus === 'reset') {
        req.socket.destroy()
        return
      }
      return send(res, record, failStatus, Buffer.from('simulated failure\n'), 'text/plain')
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      return send(res, record, 405, Buffer.from('method not allowed\n'), 'text/plain')
    }
    // The release tag is spelled with `+`; `-k3s1` is the image-tag spelling and names no release.
    const tagged = record.hop !== 'other' && record.version === decoded![1]
    const bytes = tagged ? lookup(decoded![1]!, decoded![2]!) : undefined
    if (!bytes) return send(res, record, 404, Buffer.from('Not Found'), 'text/plain')
    if (record.hop === 'download' && redirect) {
      const target = `${origin}/objects/${encodeURIComponent(record.version!)}/${encodeURIComponent(record.file!)}?sim-token=${Date.now().toString(36)}`
      res.setHeader('location', target)
      return send(res, record, 302, Buffer.alloc(0), 'text/html')
    }
    const key = `${record.version}/${record.file}`
    const body = corruptKeys.has(key) ? corrupted(record.file!, bytes) : bytes
    res.setHeader('content-disposition', `attachment; filename=${record.file}`)
    res.setHeader('accept-ranges', 'bytes')
    // `Range: bytes=N-`, as GitHub's object store answers it: 206 with the rest, 416 past the end.
    const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''))
    if (range) {
      const from = Number(range[1])
      if (from >= body.length) {
        res.setHeader('content-range', `bytes */${body.length}`)
        return send(res, record, 416, Buffer.alloc(0), 'text/plain')
      }
      record.rangeFrom = from
      res.setHeader('content-range', `bytes ${from}-${body.length - 1}/${body.length}`)
      return send(res, record, 206, body.subarray(from), 'application/octet-stream')
    }
    if (truncateAfter !== undefined && record.method === 'GET' && body.length > truncateAfter) {
      // The connection drops after this many body bytes (a flaky link), once.
      const cut = truncateAfter
      truncateAfter = undefined
      record.status = 200
      res.writeHead(200, {'content-type': 'application/octet-stream', 'content-length': body.length})
      res.write(body.subarray(0, cut), () => {
        record.bytes = cut
        res.destroy()
      })
      return
    }
    send(res, record, 200, body, 'application/octet-stream')
  }

  function send(res: ServerResponse, record: ReleaseRequest, status: number, body: Buffer, type: string): void {
    record.status = status
    res.statusCode = status
    res.setHeader('content-type', type)
    res.setHeader('content-length', body.length)
    if (record.method === 'HEAD') {
      res.end()
      return
    }
    res.on('finish', () => {
      record.bytes = body.length
      record.complete = (status === 200 || status === 206) && record.method === 'GET'
    })
    res.end(body)
  }

  return {
    url: `${origin}/download`,
    origin,
    requests,
    archiveBytes,
    versions: () => [...releases.keys()],
    addVersion,
    asset: (version, file) => lookup(version, file),
    sha256(version, file) {
      const bytes = lookup(version, file)
      if (!bytes) throw new Error(`release server: ${version}/${file} is not published`)
      return sha256(bytes)
    },
    corrupt(version, file) {
      if (!lookup(version, file)) throw new Error(`release server: cannot corrupt ${version}/${file}: not published`)
      corruptKeys.add(`${canonicalVersion(version)}/${file}`)
    },
    slow(ms) {
      delayMs = Math.max(0, ms)
    },
    truncateNext(bytes) {
      truncateAfter = bytes
    },
    failNext(n, status = 500) {
      failures = Math.max(0, n)
      failStatus = status
    },
    clearFaults() {
      corruptKeys.clear()
      delayMs = 0
      failures = 0
    },
    downloads(filter = {}) {
      const version = filter.version === undefined ? undefined : canonicalVersion(filter.version)
      return requests.filter(
        (r) => r.complete && (version === undefined || r.version === version) && (filter.file === undefined || r.file === filter.file),
      ).length
    },
    async stop() {
      for (const t of timers) clearTimeout(t)
      timers.clear()
      await http.close()
    },
  }
}
