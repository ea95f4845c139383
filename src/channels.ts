import {DEFAULT_DISTRIBUTION, DISTRIBUTIONS, type AnyDistribution} from './distributions/index.js'
import {AbortedError, ConnectionError, VersionError} from './errors.js'
import {formatDuration} from './duration.js'
import {type Distribution, isVersionString, ReleaseVersion, parseVersion} from './versions/release-version.js'

function descriptorOf(distribution: Distribution | undefined): AnyDistribution {
  return DISTRIBUTIONS[distribution ?? DEFAULT_DISTRIBUTION]
}

const DEFAULT_TIMEOUT_MS = 15_000

export interface ChannelOptions {
  /** The channel listing URL, `install.channelUrl` in homelab.yaml. */
  baseUrl?: string
  distribution?: Distribution
  fetch?: typeof globalThis.fetch
  signal?: AbortSignal
  /** Bound for each request. */
  timeoutMs?: number
}

export interface ChannelInfo {
  id: string
  name: string
  /** The version the channel points at now, as the server spells it. */
  latest: string
}

/** Lets `1.31` stand for the channel `v1.31`, as people often type it. */
export function normalizeChannelName(name: string): string {
  return /^\d+\.\d+(?:-[a-z]+)?$/.test(name) ? `v${name}` : name
}

function unreachableHint(distribution: Distribution | undefined): string {
  return `check install.channelUrl in homelab.yaml and the network, or pass an exact version such as ${descriptorOf(distribution).exampleVersion}`
}

/**
 * The version a channel points at now. Asks the channel server for `<base>/<id>` and reads the
 * 302's Location (last path segment = version), as the installer and SUC do; falls back to the
 * JSON listing when the server answers without a redirect (some mirrors and proxies do).
 */
export async function resolveChannel(name: string, options: ChannelOptions = {}): Promise<ReleaseVersion> {
  const id = normalizeChannelName(name)
  const base = baseOf(options)
  if (descriptorOf(options.distribution).channels === 'release-files') return resolveReleaseFile(id, base, options)
  if (isVersionString(id)) {
    throw new VersionError(`${id} is a version, not a channel`, {hint: `use it as the target version directly`})
  }
  const url = `${base}/${encodeURIComponent(id)}`
  const response = await request(url, options, {redirect: 'manual'})
  await response.body?.cancel().catch(() => undefined)

  const location = response.headers.get('location')
  if (response.status >= 300 && response.status < 400 && location) {
    return versionFromLocation(location, url, id, options.distribution)
  }
  if (response.status >= 500) {
    throw new ConnectionError(`the channel server at ${base} answered ${response.status} ${response.statusText} for channel ${id}`, {
      hint: `try again later; ${unreachableHint(options.distribution)}`,
    })
  }
  const channels = await listChannels(options)
  const entry = channels.find((c) => c.id === id || c.name === id)
  if (!entry) throw unknownChannel(id, base, channels, options.distribution)
  return parseReported(entry.latest, id, base, options.distribution)
}

/**
 * dl.k8s.io's way: `stable` and `latest` are `<base>/stable.txt` and `latest.txt`, a minor
 * `v1.32` is `stable-1.32.txt` (its newest patch), `latest-1.32` is `latest-1.32.txt`; each file
 * holds one version. `base` is install.channelUrl, so a mirror serves air-gapped homelabs.
 */
async function resolveReleaseFile(id: string, base: string, options: ChannelOptions): Promise<ReleaseVersion> {
  const minor = /^v(\d+\.\d+)$/.exec(id)
  const file = minor ? `stable-${minor[1]}.txt` : /^(?:stable|latest)(?:-\d+\.\d+)?$/.test(id) ? `${id}.txt` : undefined
  const example = descriptorOf(options.distribution).exampleVersion
  if (!file) {
    throw new VersionError(`${JSON.stringify(id)} is not a Kubernetes release channel`, {
      hint: `use stable, latest, a minor such as ${example.replace(/\.\d+$/, '')}, or an exact version such as ${example}`,
    })
  }
  const url = `${base}/${file}`
  const response = await request(url, options, {})
  if (response.status === 404) {
    await response.body?.cancel().catch(() => undefined)
    throw new VersionError(`${url} does not exist: there is no release for channel ${id}`, {
      hint: `check the minor (${example.replace(/\.\d+$/, '')}) and install.channelUrl, or pass an exact version such as ${example}`,
    })
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined)
    throw new ConnectionError(`${url} answered ${response.status} ${response.statusText}`, {
      hint: response.status >= 500 ? `try again later; ${unreachableHint(options.distribution)}` : unreachableHint(options.distribution),
    })
  }
  const text = (await response.text()).trim().split(/\s+/)[0] ?? ''
  return parseReported(text, id, url, options.distribution)
}

/** The channels the server lists (`GET <base>`, JSON), in the server's order. */
export async function listChannels(options: ChannelOptions = {}): Promise<ChannelInfo[]> {
  const base = baseOf(options)
  const response = await request(base, options, {headers: {accept: 'application/json'}})
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined)
    throw new ConnectionError(`the channel server at ${base} answered ${response.status} ${response.statusText} to the channel listing`, {
      hint: response.status >= 500 ? `try again later; ${unreachableHint(options.distribution)}` : unreachableHint(options.distribution),
    })
  }
  let body: unknown
  try {
    body = await response.json()
  } catch (error) {
    if (options.signal?.aborted) throw new AbortedError('cancelled while reading the channel listing', {cause: error})
    throw new ConnectionError(`the channel listing at ${base} is not JSON`, {cause: error, hint: unreachableHint(options.distribution)})
  }
  const data = (body as {data?: unknown})?.data
  if (!Array.isArray(data)) {
    throw new ConnectionError(`the channel listing at ${base} has no "data" list; is this a ${descriptorOf(options.distribution).name} channel server?`, {hint: unreachableHint(options.distribution)})
  }
  return data
    .filter((c): c is Record<string, unknown> => typeof c === 'object' && c !== null && typeof c.id === 'string')
    .map((c) => ({
      id: c.id as string,
      name: typeof c.name === 'string' ? c.name : (c.id as string),
      latest: typeof c.latest === 'string' ? c.latest : '',
    }))
}

function baseOf(options: ChannelOptions): string {
  return (options.baseUrl ?? descriptorOf(options.distribution).channelUrl).replace(/\/+$/, '')
}

async function request(url: string, options: ChannelOptions, init: RequestInit): Promise<Response> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const timeout = AbortSignal.timeout(timeoutMs)
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
  const doFetch = options.fetch ?? globalThis.fetch
  try {
    return await doFetch(url, {...init, signal})
  } catch (error) {
    if (options.signal?.aborted) throw new AbortedError(`cancelled while asking the channel server at ${url}`, {cause: error})
    if (timeout.aborted) {
      throw new ConnectionError(`the channel server at ${url} did not answer within ${formatDuration(timeoutMs)}`, {
        cause: error,
        hint: unreachableHint(options.distribution),
      })
    }
    throw new ConnectionError(`cannot reach the channel server at ${url}: ${describeNetworkError(error)}`, {
      cause: error,
      hint: unreachableHint(options.distribution),
    })
  }
}

// undici reports "fetch failed" and puts the useful part (ECONNREFUSED, ENOTFOUND, a TLS
// verification failure) in `cause`.
function describeNetworkError(error: unknown): string {
  const parts: string[] = []
  let current: unknown = error
  for (let depth = 0; current && depth < 4; depth++) {
    const e = current as {message?: unknown; code?: unknown; cause?: unknown}
    const text = [typeof e.code === 'string' ? e.code : '', typeof e.message === 'string' ? e.message : '']
      .filter(Boolean)
      .join(' ')
    if (text && !parts.some((p) => p.includes(text))) parts.push(text)
    current = e.cause
  }
  return parts.filter((p) => p !== 'fetch failed').join(': ') || 'fetch failed'
}

function versionFromLocation(location: string, requestUrl: string, id: string, distribution?: Distribution): ReleaseVersion {
  let segment: string
  try {
    const target = new URL(location, requestUrl)
    segment = decodeURIComponent(target.pathname.split('/').filter(Boolean).at(-1) ?? '')
  } catch (error) {
    throw new ConnectionError(`the channel server redirected channel ${id} to ${JSON.stringify(location)}, which is not a URL`, {
      cause: error,
      hint: unreachableHint(distribution),
    })
  }
  return parseReported(segment, id, requestUrl, distribution)
}

function parseReported(reported: string, id: string, where: string, distribution?: Distribution): ReleaseVersion {
  try {
    return parseVersion(reported, distribution)
  } catch (error) {
    throw new VersionError(`the channel server at ${where} says channel ${id} is ${JSON.stringify(reported)}, which is not a ${descriptorOf(distribution).name} version`, {
      cause: error,
      hint: `check that install.channelUrl points at the ${descriptorOf(distribution).name} channel server, or pass an exact version`,
    })
  }
}

function unknownChannel(id: string, base: string, channels: readonly ChannelInfo[], distribution?: Distribution): VersionError {
  const known = channels.map((c) => c.id)
  const example = descriptorOf(distribution).exampleVersion
  return new VersionError(`the channel server at ${base} has no channel ${JSON.stringify(id)}`, {
    hint: known.length
      ? `use one of: ${known.join(', ')}; or pass an exact version such as ${example}`
      : `the server lists no channels; pass an exact version such as ${example}`,
  })
}
