/**
 * A loopback stand-in for a private registry mirror (an OCI distribution registry such as
 * `registry:2`, Harbor or zot), as much of it as a pre-flight image check meets:
 * - `GET /v2/`: 200, or 401 with the challenge a real registry sends (Basic, or Bearer naming its
 *   token endpoint).
 * - `HEAD|GET /v2/<name>/manifests/<tag|digest>`: 200 with `Content-Type` (an OCI image index,
 *   as the multi-arch k3s images are) and `Docker-Content-Digest` for a held image, else 404 with
 *   the registry's `MANIFEST_UNKNOWN` error. Like distribution, an index is only served to a
 *   client whose `Accept` lists the OCI index type.
 * - `GET /token?service=…&scope=…` (bearer mode): a token for that scope, for Basic credentials.
 * Images are held as the registry names them (`rancher/mirrored-pause:3.6`, no registry host).
 * With `tls`, it serves a certificate for IP 127.0.0.1 signed by a CA made for this server.
 * Every request is logged, with whether and how it was authorised.
 */
import {createHash, randomBytes} from 'node:crypto'
import {createServer as createHttpsServer} from 'node:https'
import type {IncomingMessage, ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'

import {makeServerTls} from './kube-api/tls.js'
import {listenOnLoopback} from './loopback-http.js'

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
const SERVICE = 'homelab-sim-registry'

export interface RegistryServerOptions {
  /** `rancher/mirrored-pause:3.6` or `<name>@sha256:<hex>`; no tag means `latest`. */
  images: readonly string[]
  tls?: boolean
  /** Without it, anyone may read. `bearer`: the token flow (Basic credentials at /token only). */
  auth?: {username: string; password: string; bearer?: boolean; tokenField?: 'token' | 'access_token'}
}

export interface RegistryRequest {
  method: string
  /** Decoded path, without the query. */
  path: string
  /** `ns=docker.io`, as containerd sends to a mirror; '' when none. */
  query: string
  authorization: 'none' | 'basic' | 'bearer'
  accept: string
  status: number
}

export interface RegistryServer {
  /** `http(s)://127.0.0.1:PORT`: the endpoint for registries.yaml. */
  readonly url: string
  /** `127.0.0.1:PORT`: the key for `configs:` and the host in a docker reference. */
  readonly host: string
  /** The CA that signed the server certificate (tls only). */
  readonly caPem?: string
  readonly requests: RegistryRequest[]
  /** The manifest requests only (HEAD and GET), in order. */
  manifestRequests(): RegistryRequest[]
  add(image: string): void
  remove(image: string): void
  stop(): Promise<void>
}

function key(image: string): string {
  const at = image.indexOf('@')
  if (at >= 0) return image
  const colon = image.lastIndexOf(':')
  return colon > image.lastIndexOf('/') ? image : `${image}:latest`
}

function errorBody(code: string, message: string): string {
  return JSON.stringify({errors: [{code, message, detail: null}]})
}

export async function startRegistryServer(options: RegistryServerOptions): Promise<RegistryServer> {
  const held = new Set(options.images.map(key))
  const requests: RegistryRequest[] = []
  const tokens = new Map<string, string>()
  const auth = options.auth
  const basic = auth && `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`
  let origin = ''

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://registry.invalid')
    const header = req.headers.authorization ?? ''
    const entry: RegistryRequest = {
      method: req.method ?? 'GET',
      path: decodeURIComponent(url.pathname),
      query: url.search.slice(1),
      authorization: header.startsWith('Basic ') ? 'basic' : header.startsWith('Bearer ') ? 'bearer' : 'none',
      accept: req.headers.accept ?? '',
      status: 0,
    }
    requests.push(entry)
    const send = (status: number, headers: Record<string, string>, body = ''): void => {
      entry.status = status
      res.writeHead(status, {'Docker-Distribution-API-Version': 'registry/2.0', 'Content-Length': String(Buffer.byteLength(body)), ...headers})
      res.end(req.method === 'HEAD' ? undefined : body)
    }
    const json = {'Content-Type': 'application/json'}

    if (entry.path === '/token' && auth?.bearer) {
      if (header !== basic) return send(401, {...json, 'WWW-Authenticate': `Basic realm="${SERVICE}"`}, errorBody('UNAUTHORIZED', 'bad credentials'))
      const token = randomBytes(16).toString('hex')
      tokens.set(token, url.searchParams.get('scope') ?? '')
      return send(200, json, JSON.stringify({[auth.tokenField ?? 'token']: token, expires_in: 300}))
    }

    const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(entry.path)
    if (entry.path !== '/v2/' && !manifest) return send(404, json, errorBody('NOT_FOUND', 'no such route'))
    const scope = manifest ? `repository:${manifest[1]}:pull` : ''
    // A token is good for the scope it was issued for (any token will do for /v2/).
    const granted = header.startsWith('Bearer ') ? tokens.get(header.slice(7)) : undefined
    const authorised = !auth || (auth.bearer ? granted !== undefined && (!manifest || granted === scope) : header === basic)
    if (!authorised) {
      const challenge = auth!.bearer ? `Bearer realm="${origin}/token",service="${SERVICE}"${scope ? `,scope="${scope}"` : ''}` : `Basic realm="${SERVICE}"`
      return send(401, {...json, 'WWW-Authenticate': challenge}, errorBody('UNAUTHORIZED', 'authentication required'))
    }
    if (!manifest) return send(200, json, '{}')
    if (req.method !== 'HEAD' && req.method !== 'GET') return send(405, json, errorBody('UNSUPPORTED', 'method not allowed'))
    const [, name, reference] = manifest
    const wanted = reference!.includes(':') ? `${name}@${reference}` : `${name}:${reference}`
    if (!held.has(wanted)) return send(404, json, errorBody('MANIFEST_UNKNOWN', `manifest unknown: ${wanted}`))
    if (!entry.accept.split(',').some((t) => t.trim().split(';')[0] === OCI_INDEX)) {
      return send(404, json, errorBody('MANIFEST_UNKNOWN', 'OCI index found, but accept header does not support OCI indexes'))
    }
    const body = JSON.stringify({schemaVersion: 2, mediaType: OCI_INDEX, manifests: [], annotations: {'org.opencontainers.image.ref.name': wanted}})
    send(200, {'Content-Type': OCI_INDEX, 'Docker-Content-Digest': `sha256:${createHash('sha256').update(body).digest('hex')}`}, body)
  }

  let stop: () => Promise<void>
  let caPem: string | undefined
  if (options.tls) {
    const tls = await makeServerTls()
    caPem = tls.caPem
    const server = createHttpsServer({key: tls.keyPem, cert: tls.certPem}, handle)
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
    stop = async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      // Keep-alive clients would hold the listener open.
      server.closeAllConnections()
      await closed
    }
  } else {
    const http = await listenOnLoopback(handle)
    origin = http.origin
    stop = () => http.close()
  }

  return {
    url: origin,
    host: new URL(origin).host,
    caPem,
    requests,
    manifestRequests: () => requests.filter((r) => r.path.includes('/manifests/')),
    add: (image) => void held.add(key(image)),
    remove: (image) => void held.delete(key(image)),
    stop: () => stop(),
  }
}
