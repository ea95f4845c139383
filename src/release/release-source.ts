import {createHash} from 'node:crypto'
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

/** Any verified release file (a binary, an images archive), by its release name. */
export interface VerifiedArtifact extends VerifiedBinary {
  file: string
}

export interface ReleaseSourceOptions {
  distribution: DistributionDescriptor
  releaseUrl: string
  cacheDir: string
  fetch?: typeof fetch
  /** Bound of a small request (checksums, lists). */
  timeoutMs?: number
  /** Bound of one download of a binary or an archive; a download cut short resumes next time. */
  downloadTimeoutMs?: number
}

/**
 * Downloads a distribution's release files once per version and architecture into a cache, and
 * only ever hands out files whose sha256 equals the release's sha256sum-<arch>.txt — checked on
 * download and again when a cached file is reused. A download cut short is resumed from where
 * it stopped (an images archive is hundreds of MiB) when the server honours ranges.
 */
export class ReleaseSource {
  private readonly fetch: typeof fetch
  private readonly inflight = new Map<string, Promise<VerifiedArtifact>>()
  private readonly checksums = new Map<string, Promise<string>>()

  constructor(private readonly options: ReleaseSourceOptions) {
    this.fetch = options.fetch ?? fetch
  }

  /** The sha256 the release publishes for this architecture's binary. */
  expectedSha256(version: ReleaseVersion, arch: Arch, signal?: AbortSignal): Promise<string> {
    return this.expectedSha256Of(version, arch, artifactName(this.options.distribution, arch), signal)
  }

  /** The sha256 sha256sum-<arch>.txt lists for `file`. */
  async expectedSha256Of(version: ReleaseVersion, arch: Arch, file: string, signal?: AbortSignal): Promise<string> {
    const url = artifactUrl(this.options.releaseUrl, version, this.options.distribution.checksumFile(arch))
    const text = await this.checksumText(url, signal)
    for (const line of text.split('\n')) {
      const [hash, name] = line.trim().split(/\s+\*?/)
      if (name === file && /^[0-9a-f]{64}$/i.test(hash)) return hash.toLowerCase()
    }
    throw new HomelabError(`${url} lists no sha256 for ${file}`, {
      hint: 'check install.releaseUrl: a mirror must serve the release files unchanged',
    })
  }

  /** A release file that is not checksummed (an image list), as text. */
  async text(version: ReleaseVersion, file: string, signal?: AbortSignal): Promise<string> {
    return (await this.get(artifactUrl(this.options.releaseUrl, version, file), signal)).text()
  }

  /** The verified binary, from the cache or downloaded now. Concurrent callers share one download. */
  binary(version: ReleaseVersion, arch: Arch, signal?: AbortSignal): Promise<VerifiedBinary> {
    return this.artifact(version, arch, artifactName(this.options.distribution, arch), signal)
  }

  /** A verified release file of `arch`, from the cache or downloaded now. Concurrent callers share one download. */
  artifact(version: ReleaseVersion, arch: Arch, file: string, signal?: AbortSignal): Promise<VerifiedArtifact> {
    const key = `${version.format()}/${arch}/${file}`
    let pending = this.inflight.get(key)
    if (!pending) {
      pending = this.fetchArtifact(version, arch, file, signal)
      pending.catch(() => this.inflight.delete(key))
      this.inflight.set(key, pending)
    }
    return pending
  }

  /** One read of each checksum file per run, however many files of it are asked for. */
  private checksumText(url: string, signal?: AbortSignal): Promise<string> {
    let pending = this.checksums.get(url)
    if (!pending) {
      pending = this.get(url, signal).then((response) => response.text())
      pending.catch(() => this.checksums.delete(url))
      this.checksums.set(url, pending)
    }
    return pending
  }

  private async fetchArtifact(version: ReleaseVersion, arch: Arch, file: string, signal?: AbortSignal): Promise<VerifiedArtifact> {
    const expected = await this.expectedSha256Of(version, arch, file, signal)
    const dir = path.join(this.options.cacheDir, version.format(), arch)
    const target = path.join(dir, file)
    const verified = (size: number): VerifiedArtifact => ({version: version.format(), arch, file, path: target, sha256: expected, size})
    const cached = await sha256File(target).catch(() => undefined)
    if (cached === expected) return verified((await stat(target)).size)
    await mkdir(dir, {recursive: true})
    const url = artifactUrl(this.options.releaseUrl, version, file)
    // Named for the file it will become, so the next run resumes what this one could not finish.
    const partial = `${target}.part`
    const have = await stat(partial).then((s) => s.size, () => 0)
    const hash = createHash('sha256')
    const download = {timeoutMs: this.options.downloadTimeoutMs ?? 1_800_000}
    let response = await this.get(url, signal, {...download, headers: have > 0 ? {range: `bytes=${have}-`} : undefined})
    let append = false
    if (have > 0 && response.status === 206 && response.headers.get('content-range')?.startsWith(`bytes ${have}-`)) {
      // Not pipeline(): that would end the hash before the rest of the bytes are added.
      for await (const chunk of createReadStream(partial)) hash.update(chunk as Buffer)
      append = true
    } else if (have > 0 && response.status === 206) {
      // A range we did not ask for: start again from the first byte.
      await response.body?.cancel()
      response = await this.get(url, signal, download)
    }
    let size = append ? have : 0
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
        createWriteStream(partial, {mode: 0o644, flags: append ? 'a' : 'w'}),
        {signal},
      )
      const actual = hash.digest('hex')
      if (actual !== expected) {
        throw new PreflightError(`download sha256 does not match for ${url}: got ${actual}, the release says ${expected}`, {
          hint: 'the file was corrupted or altered on the way; nothing was installed. Check install.releaseUrl and try again',
        })
      }
      await rename(partial, target)
    } catch (error) {
      // A mismatch starts again next time; a cut-short transfer keeps its bytes to resume from.
      if (error instanceof PreflightError) {
        await rm(partial, {force: true})
        throw error
      }
      if (signal?.aborted) throw error
      throw new ConnectionError(`download of ${url} was cut short after ${size} bytes: ${(error as Error).message}`, {
        cause: error,
        hint: 'run again: the download resumes where it stopped',
      })
    }
    return verified(size)
  }

  /** The size of a release file, without downloading it (for `--dry-run`). */
  async size(version: ReleaseVersion, file: string, signal?: AbortSignal): Promise<number | undefined> {
    const response = await this.get(artifactUrl(this.options.releaseUrl, version, file), signal, {method: 'HEAD'})
    const length = Number(response.headers.get('content-length'))
    return Number.isFinite(length) && length > 0 ? length : undefined
  }

  private async get(url: string, signal?: AbortSignal, options: {headers?: Record<string, string>; method?: string; timeoutMs?: number} = {}): Promise<Response> {
    const {headers, method = 'GET'} = options
    const timeout = AbortSignal.timeout(options.timeoutMs ?? this.options.timeoutMs ?? 120_000)
    let response: Response
    try {
      response = await this.fetch(url, {method, headers, signal: signal ? AbortSignal.any([signal, timeout]) : timeout, redirect: 'follow'})
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
