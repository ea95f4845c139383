import {createHash, randomBytes} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdir, rename, rm, stat} from 'node:fs/promises'
import path from 'node:path'
import {Readable, Transform} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import type {Arch, DistributionDescriptor} from '../distributions/index.js'
import {ConnectionError, HomelabError, PreflightError} from '../errors.js'
import type {ReleaseVersion} from '../versions/release-version.js'

export type {Arch} from '../distributions/index.js'

/** The release asset holding the bare binary for `arch`; refuses an arch the distribution does not publish. */
export function artifactName(distribution: DistributionDescriptor, arch: Arch): string {
  const name = distribution.binaryArtifacts[arch]
  if (!name) {
    const published = Object.keys(distribution.binaryArtifacts).join(', ')
    throw new PreflightError(`${distribution.name} publishes no binary for ${arch}`, {hint: `${distribution.name} runs on ${published} only`})
  }
  return name
}

/** `uname -m` (or a Node's status.nodeInfo.architecture) to the release's arch name. */
export function normaliseArch(machine: string): Arch {
  const m = machine.trim()
  if (m === 'x86_64' || m === 'amd64') return 'amd64'
  if (m === 'aarch64' || m === 'arm64') return 'arm64'
  // Like the installers: every other arm* (incl. armv8l, a 32-bit userland) takes the armhf binary.
  if (m.startsWith('arm')) return 'arm'
  if (m === 's390x') return 's390x'
  throw new PreflightError(`unsupported machine architecture "${m}"`, {hint: 'releases are published for amd64, arm64, arm (armhf) and s390x only'})
}

export function artifactUrl(releaseUrl: string, version: ReleaseVersion, file: string): string {
  return `${releaseUrl.replace(/\/+$/, '')}/${version.urlEncoded()}/${file}`
}

export interface VerifiedBinary {
  version: string
  arch: Arch
  /** Local path of the verified file in the cache. */
  path: string
  sha256: string
  size: number
}

export interface ReleaseSourceOptions {
  distribution: DistributionDescriptor
  releaseUrl: string
  cacheDir: string
  fetch?: typeof fetch
  timeoutMs?: number
}

/**
 * Downloads a distribution's binaries once per version and architecture into a cache, and only ever hands
 * out files whose sha256 equals the release's sha256sum-<arch>.txt — checked on download and
 * again when a cached file is reused.
 */
export class ReleaseSource {
  private readonly fetch: typeof fetch
  private readonly inflight = new Map<string, Promise<VerifiedBinary>>()

  constructor(private readonly options: ReleaseSourceOptions) {
    this.fetch = options.fetch ?? fetch
  }

  /** The sha256 the release publishes for this architecture's binary. */
  async expectedSha256(version: ReleaseVersion, arch: Arch, signal?: AbortSignal): Promise<string> {
    const url = artifactUrl(this.options.releaseUrl, version, this.options.distribution.checksumFile(arch))
    const response = await this.get(url, signal)
    const text = await response.text()
    const file = artifactName(this.options.distribution, arch)
    for (const line of text.split('\n')) {
      const [hash, name] = line.trim().split(/\s+\*?/)
      if (name === file && /^[0-9a-f]{64}$/i.test(hash)) return hash.toLowerCase()
    }
    throw new HomelabError(`${url} lists no sha256 for ${file}`, {
      hint: 'check install.releaseUrl: a mirror must serve the release files unchanged',
    })
  }

  /** The verified binary, from the cache or downloaded now. Concurrent callers share one download. */
  binary(version: ReleaseVersion, arch: Arch, signal?: AbortSignal): Promise<VerifiedBinary> {
    const key = `${version.format()}/${arch}`
    let pending = this.inflight.get(key)
    if (!pending) {
      pending = this.fetchBinary(version, arch, signal)
      pending.catch(() => this.inflight.delete(key))
      this.inflight.set(key, pending)
    }
    return pending
  }

  private async fetchBinary(version: ReleaseVersion, arch: Arch, signal?: AbortSignal): Promise<VerifiedBinary> {
    const expected = await this.expectedSha256(version, arch, signal)
    const file = artifactName(this.options.distribution, arch)
    const dir = path.join(this.options.cacheDir, version.format(), arch)
    const target = path.join(dir, file)
    const cached = await sha256File(target).catch(() => undefined)
    if (cached === expected) {
      return {version: version.format(), arch, path: target, sha256: expected, size: (await stat(target)).size}
    }
    await mkdir(dir, {recursive: true})
    const url = artifactUrl(this.options.releaseUrl, version, file)
    const response = await this.get(url, signal)
    const temp = `${target}.${randomBytes(4).toString('hex')}.part`
    const hash = createHash('sha256')
    let size = 0
    try {
      await pipeline(
        Readable.fromWeb(response.body as import('node:stream/web').ReadableStream),
        new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            hash.update(chunk)
            size += chunk.length
            callback(null, chunk)
          },
        }),
        createWriteStream(temp, {mode: 0o644}),
        {signal},
      )
      const actual = hash.digest('hex')
      if (actual !== expected) {
        throw new HomelabError(`download sha256 does not match for ${url}: got ${actual}, the release says ${expected}`, {
          hint: 'the file was corrupted or altered on the way; nothing was installed. Check install.releaseUrl and try again',
        })
      }
      await rename(temp, target)
    } finally {
      await rm(temp, {force: true})
    }
    return {version: version.format(), arch, path: target, sha256: expected, size}
  }

  private async get(url: string, signal?: AbortSignal): Promise<Response> {
    const timeout = AbortSignal.timeout(this.options.timeoutMs ?? 120_000)
    let response: Response
    try {
      response = await this.fetch(url, {signal: signal ? AbortSignal.any([signal, timeout]) : timeout, redirect: 'follow'})
    } catch (error) {
      throw new ConnectionError(`cannot download ${url}: ${(error as Error).message}`, {
        cause: error,
        hint: 'check the network and install.releaseUrl in homelab.yaml (a mirror works for air-gapped homelabs)',
      })
    }
    if (!response.ok) {
      throw new ConnectionError(`cannot download ${url}: HTTP ${response.status}`, {
        hint: response.status === 404 ? 'this version or architecture is not in the release; check the version and install.releaseUrl' : 'check install.releaseUrl and try again',
      })
    }
    return response
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(createReadStream(file), hash)
  return hash.digest('hex')
}
