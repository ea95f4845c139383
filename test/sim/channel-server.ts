import {createServer, type IncomingMessage, type ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'

import {distributionOf, type Distribution} from './k3s-fake.js'

/** Where each distribution's channel server points its 302s; the version is appended. */
export const RELEASE_TAG_BASE: Readonly<Record<Distribution, string>> = {
  k3s: 'https://github.com/k3s-io/k3s/releases/tag/',
  rke2: 'https://github.com/rancher/rke2/releases/tag/',
}

/**
 * A stand-in for the k3s and rke2 channel servers (update.k3s.io, update.rke2.io: the same JSON
 * and 302 shape) on loopback: `GET <base>` lists the channels as JSON, `GET <base>/<id>` answers
 * 302 with the release page as Location, whose last segment is the version: on
 * github.com/rancher/rke2 for an rke2 version, github.com/k3s-io/k3s otherwise. Anything else
 * is 404, like the real one.
 */
export interface ChannelServerOptions {
  /** Channel id → version, e.g. `{stable: 'v1.31.4+k3s1', 'v1.30': 'v1.30.8+k3s1'}`. */
  channels: Record<string, string>
  /** Path the listing lives at; the real one is `/v1-release/channels`. */
  basePath?: string
  /** Where the 302s point; the version is appended. Default: the version's own repository (RELEASE_TAG_BASE). */
  releaseTagBase?: string
  host?: string
}

export interface ChannelServer {
  /** The listing URL, what `install.channelUrl` should be set to. */
  readonly url: string
  /** How many requests were answered so far. */
  readonly requestCount: number
  /** `GET /v1-release/channels/stable`, in order. */
  readonly requests: readonly string[]
  setChannels(channels: Record<string, string>): void
  /** Delays every answer, to exercise client timeouts. */
  setDelay(ms: number): void
  stop(): Promise<void>
}

export async function startChannelServer(options: ChannelServerOptions): Promise<ChannelServer> {
  const basePath = (options.basePath ?? '/v1-release/channels').replace(/\/+$/, '')
  const tagUrl = (version: string) => `${options.releaseTagBase ?? RELEASE_TAG_BASE[distributionOf(version) ?? 'k3s']}${version}`
  const host = options.host ?? '127.0.0.1'
  let channels = {...options.channels}
  let delayMs = 0
  const requests: string[] = []
  const timers = new Set<NodeJS.Timeout>()

  const answer = (req: IncomingMessage, res: ServerResponse, origin: string) => {
    const path = new URL(req.url ?? '/', origin).pathname.replace(/\/+$/, '')
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return json(res, 405, {type: 'error', status: 405, code: 'MethodNotAllowed', message: `${req.method} not allowed`})
    }
    if (path === basePath) {
      const self = `${origin}${basePath}`
      return json(res, 200, {
        type: 'collection',
        links: {self},
        actions: {},
        resourceType: 'channel',
        data: Object.entries(channels).map(([id, latest]) => ({
          id,
          type: 'channel',
          links: {self: `${self}/${id}`},
          name: id,
          latest,
        })),
      })
    }
    if (path.startsWith(`${basePath}/`)) {
      const id = decodeURIComponent(path.slice(basePath.length + 1))
      const version = Object.hasOwn(channels, id) ? channels[id] : undefined
      if (version !== undefined) {
        res.writeHead(302, {location: tagUrl(version), 'content-length': '0'})
        return res.end()
      }
    }
    return json(res, 404, {type: 'error', status: 404, code: 'NotFound', message: `${path} not found`})
  }

  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`)
    const origin = `http://${req.headers.host ?? host}`
    if (delayMs <= 0) return answer(req, res, origin)
    const timer = setTimeout(() => {
      timers.delete(timer)
      answer(req, res, origin)
    }, delayMs)
    timers.add(timer)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const {port} = server.address() as AddressInfo
  const hostInUrl = host.includes(':') ? `[${host}]` : host

  return {
    url: `http://${hostInUrl}:${port}${basePath}`,
    get requestCount() {
      return requests.length
    },
    get requests() {
      return [...requests]
    },
    setChannels(next) {
      channels = {...next}
    },
    setDelay(ms) {
      delayMs = ms
    },
    async stop() {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {'content-type': 'application/json', 'content-length': Buffer.byteLength(text)})
  res.end(text)
}
