/**
 * The HTTPS front of the simulated apiserver: bearer-token authentication, URL routing to
 * resources and subresources, discovery, health and version endpoints, watch streams, the audit
 * log, injected faults, and going away (refusing connections) for a while.
 */
import type {IncomingMessage, ServerResponse} from 'node:http'
import https from 'node:https'
import type {Socket} from 'node:net'
import type {AuditEntry, AuditLog, Sequencer, Verb} from './recorder.js'
import {PATCH_TYPES, type RequestContext, Rest} from './rest.js'
import {type ResourceRegistry, type ResourceType, apiVersionOf, resourceKey} from './resources.js'
import {matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector} from './selectors.js'
import {ApiError, type Status, errors} from './status.js'
import type {ObjectStore, StoreEvent} from './store.js'
import type {Timers} from './timers.js'
import {type Dict, type KubeObject, isPlainObject} from './types.js'

export interface Fault {
  /** Match on any of these (all given must match). */
  verb?: string
  method?: string
  group?: string
  resource?: string
  subresource?: string
  namespace?: string
  name?: string
  /** Answer with this HTTP status (a Status object with `reason`/`message`). */
  code?: number
  reason?: string
  message?: string
  /** Drop the connection without an answer instead. */
  reset?: boolean
  /** Wait this long before handling (or failing) the request. */
  delayMs?: number
  /** How many requests to affect (default 1; Infinity for all). */
  times?: number
}

interface ActiveFault extends Fault {
  remaining: number
}

export interface ServerOptions {
  token: string
  keyPem: string
  certPem: string
  bookmarkIntervalMs: number
  versionInfo: () => Dict
  isReady: () => boolean
}

interface ResourceRoute {
  rt: ResourceType
  namespace?: string
  name?: string
  subresource?: string
}

const maxBody = 16 * 1024 * 1024

function send(res: ServerResponse, code: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  if (res.headersSent || res.destroyed) return
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  res.writeHead(code, {'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', 'Cache-Control': 'no-cache, private', ...headers})
  res.end(text)
}

function sendStatus(res: ServerResponse, status: Status, headers: Record<string, string | string[]> = {}): void {
  const h = {...headers}
  if (status.details?.retryAfterSeconds) h['Retry-After'] = String(status.details.retryAfterSeconds)
  send(res, status.code, status, h)
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > maxBody) {
        reject(new ApiError(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 16MiB'))
        req.destroy()
      } else chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0].trim().toLowerCase()
}

export class ApiServer {
  private readonly server: https.Server
  private readonly sockets = new Set<Socket>()
  private readonly watchClosers = new Set<() => void>()
  private readonly faults: ActiveFault[] = []
  private readonly deprecatedRequested = new Map<string, Record<string, string>>()
  private readonly rest: Rest
  private boundPort = 0
  private listening = false

  constructor(
    private readonly store: ObjectStore,
    private readonly registry: ResourceRegistry,
    private readonly audit: AuditLog,
    private readonly seq: Sequencer,
    private readonly timers: Timers,
    private readonly opts: ServerOptions,
  ) {
    this.rest = new Rest(store)
    this.server = https.createServer({key: opts.keyPem, cert: opts.certPem}, (req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        sendStatus(res, errors.internal(String((e as Error)?.message ?? e)).status)
      })
    })
    this.server.on('secureConnection', () => this.handshakes++)
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s)
      s.on('close', () => this.sockets.delete(s))
    })
    // A client that gives up mid-handshake must not crash the simulation.
    this.server.on('tlsClientError', () => {})
  }

  get port(): number {
    return this.boundPort
  }

  /** TLS handshakes completed since the start: how many connections clients opened. */
  handshakes = 0

  get isListening(): boolean {
    return this.listening
  }

  async listen(port = 0): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          const onError = (e: Error) => reject(e)
          this.server.once('error', onError)
          this.server.listen(port, '127.0.0.1', () => {
            this.server.off('error', onError)
            resolve()
          })
        })
        break
      } catch (e) {
        // Coming back on the same port can race with the kernel releasing it.
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 50) throw e
        await new Promise((r) => setTimeout(r, 20))
      }
    }
    this.boundPort = (this.server.address() as {port: number}).port
    this.listening = true
  }

  /** Stop accepting connections and drop every open one (watches included). */
  async unlisten(): Promise<void> {
    if (!this.listening) return
    this.listening = false
    for (const close of [...this.watchClosers]) close()
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const s of this.sockets) s.destroy()
    await closed
  }

  /** End every open watch cleanly, as the apiserver does when a watch reaches its request timeout. */
  endWatches(): void {
    for (const close of [...this.watchClosers]) close()
  }

  addFault(f: Fault): void {
    this.faults.push({...f, remaining: f.times ?? 1})
  }

  clearFaults(): void {
    this.faults.length = 0
  }

  // ------------------------------------------------------------------ request handling

  private authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization ?? ''
    return h === `Bearer ${this.opts.token}`
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1')
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname
    const query: Record<string, string> = Object.fromEntries(url.searchParams)
    const method = (req.method ?? 'GET').toUpperCase()
    const entry: Omit<AuditEntry, 'seq' | 'at' | 'code'> = {
      startSeq: this.seq.next(),
      method,
      path,
      query,
      verb: 'unknown',
      userAgent: req.headers['user-agent'],
      contentType: req.headers['content-type'],
      dryRun: url.searchParams.getAll('dryRun').length > 0,
      fieldManager: query.fieldManager,
    }
    const finish = (code: number, reason?: string): void => {
      this.audit.push({...entry, seq: this.seq.next(), at: Date.now(), code, ...(reason ? {reason} : {})})
    }

    let rawBody = ''
    try {
      rawBody = await readBody(req)
      if (rawBody && writeMethod(method)) entry.body = parseForAudit(rawBody, entry.contentType)
      if (!this.authorized(req)) throw errors.unauthorized()

      const nonResource = this.nonResource(method, path, url)
      if (nonResource) {
        entry.verb = nonResource.verb
        // Only a fault naming the verb (`metrics`, `health`) touches these paths.
        await this.applyFault(entry, res, {verbRequired: true})
        if (res.destroyed) {
          finish(0, 'ConnectionReset')
          return
        }
        send(res, nonResource.code, nonResource.body)
        finish(nonResource.code)
        return
      }

      const route = this.route(path)
      Object.assign(entry, {group: route.rt.group, version: route.rt.version, resource: route.rt.resource, subresource: route.subresource, namespace: route.namespace, name: route.name})
      const verb = verbOf(method, route, query)
      entry.verb = verb
      const deprecation = this.deprecationOf(route)
      const dryRunValues = url.searchParams.getAll('dryRun')
      for (const v of dryRunValues) if (v !== 'All') throw errors.badRequest(`dryRun: Unsupported value: "${v}": supported values: "All"`)

      await this.applyFault(entry, res)
      if (res.destroyed) {
        finish(0, 'ConnectionReset')
        return
      }

      if (verb === 'watch') {
        this.watch(req, res, route, query)
        finish(200)
        return
      }
      const ctx: RequestContext = {
        dryRun: dryRunValues.includes('All'),
        fieldManager: query.fieldManager,
        fieldValidation: (query.fieldValidation as RequestContext['fieldValidation']) ?? 'Warn',
        force: query.force === undefined ? undefined : query.force === 'true',
        userAgent: String(req.headers['user-agent'] ?? ''),
        warnings: deprecation ? [deprecation] : [],
      }
      const {code, body} = this.dispatch(verb, route, query, req, rawBody, ctx)
      const headers: Record<string, string[]> = {}
      if (ctx.warnings.length > 0) headers.Warning = ctx.warnings.map((w) => `299 - ${JSON.stringify(w)}`)
      send(res, code, body, headers)
      finish(code)
    } catch (e) {
      const status = e instanceof ApiError ? e.status : errors.internal(String((e as Error)?.message ?? e)).status
      sendStatus(res, status)
      finish(status.code, status.reason)
    }
  }

  private async applyFault(entry: Omit<AuditEntry, 'seq' | 'at' | 'code'>, res: ServerResponse, options: {verbRequired?: boolean} = {}): Promise<void> {
    const f = this.faults.find(
      (x) =>
        x.remaining > 0 &&
        (!options.verbRequired || x.verb !== undefined) &&
        (x.verb === undefined || x.verb === entry.verb) &&
        (x.method === undefined || x.method === entry.method) &&
        (x.group === undefined || x.group === entry.group) &&
        (x.resource === undefined || x.resource === entry.resource) &&
        (x.subresource === undefined || x.subresource === entry.subresource) &&
        (x.namespace === undefined || x.namespace === entry.namespace) &&
        (x.name === undefined || x.name === entry.name),
    )
    if (!f) return
    f.remaining--
    if (f.delayMs) await new Promise<void>((resolve) => this.timers.after(f.delayMs!, resolve, 'fault-delay'))
    if (f.reset) {
      res.socket?.destroy()
      res.destroy()
      return
    }
    if (f.code) throw new ApiError(f.code, f.reason ?? 'InternalError', f.message ?? 'injected failure')
  }

  private nonResource(method: string, path: string, url: URL): {verb: AuditEntry['verb']; code: number; body: unknown} | undefined {
    if (['/readyz', '/livez', '/healthz'].includes(path) || path.startsWith('/readyz/') || path.startsWith('/livez/')) {
      const ok = path.startsWith('/livez') || this.opts.isReady()
      if (url.searchParams.has('verbose')) {
        const lines = ['[+]ping ok', '[+]log ok', `[${ok ? '+' : '-'}]etcd ${ok ? 'ok' : 'failed: reason withheld'}`, `${path.slice(1)} check ${ok ? 'passed' : 'failed'}`]
        return {verb: 'health', code: ok ? 200 : 500, body: lines.join('\n') + '\n'}
      }
      return {verb: 'health', code: ok ? 200 : 500, body: ok ? 'ok' : `[-]etcd failed: reason withheld\n${path.slice(1)} check failed\n`}
    }
    if (path === '/version') return {verb: 'version', code: 200, body: this.opts.versionInfo()}
    if (path === '/metrics' && method === 'GET') return {verb: 'metrics', code: 200, body: this.metricsText()}
    if (method !== 'GET') return undefined
    if (path === '/api') {
      return {verb: 'discovery', code: 200, body: {kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.boundPort}`}]}}
    }
    if (path === '/apis') return {verb: 'discovery', code: 200, body: this.registry.apiGroupList()}
    if (path === '/api/v1') return {verb: 'discovery', code: 200, body: this.registry.resourceList('', 'v1')}
    const m = path.match(/^\/apis\/([^/]+)(?:\/([^/]+))?$/)
    if (m) {
      const body = m[2] ? this.registry.resourceList(m[1], m[2]) : this.registry.apiGroup(m[1])
      if (!body) throw errors.noSuchPath()
      return {verb: 'discovery', code: 200, body}
    }
    if (path === '/') return {verb: 'discovery', code: 200, body: {paths: ['/api', '/api/v1', '/apis', '/healthz', '/livez', '/readyz', '/version']}}
    return undefined
  }

  private route(path: string): ResourceRoute {
    const segs = path.split('/').filter(Boolean).map((s) => decodeURIComponent(s))
    let group: string
    let version: string
    let rest: string[]
    if (segs[0] === 'api' && segs.length >= 2) {
      group = ''
      version = segs[1]
      rest = segs.slice(2)
    } else if (segs[0] === 'apis' && segs.length >= 3) {
      group = segs[1]
      version = segs[2]
      rest = segs.slice(3)
    } else {
      throw errors.noSuchPath()
    }
    let namespace: string | undefined
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const rt = this.registry.byPath(group, version, rest[2])
      if (rt?.namespaced) {
        namespace = rest[1]
        rest = rest.slice(2)
      }
    }
    const [resource, name, subresource, ...extra] = rest
    const rt = resource ? this.registry.byPath(group, version, resource) : undefined
    if (!rt || extra.length > 0) throw errors.noSuchPath()
    if (rt.namespaced && name !== undefined && namespace === undefined) throw errors.noSuchPath()
    if (subresource !== undefined && !rt.subresources.includes(subresource)) throw errors.noSuchPath()
    return {rt, namespace, name, subresource}
  }

  private dispatch(verb: Verb, route: ResourceRoute, query: Record<string, string>, req: IncomingMessage, raw: string, ctx: RequestContext): {code: number; body: unknown} {
    const {rt, namespace, name, subresource} = route
    const parseJson = (): unknown => {
      if (raw.trim() === '') return undefined
      try {
        return JSON.parse(raw)
      } catch (e) {
        throw errors.badRequest(`the object provided is unrecognized: couldn't get version/kind; json parse error: ${(e as Error).message}`)
      }
    }
    switch (verb) {
      case 'get':
        return {code: 200, body: this.rest.get(rt, namespace, name!)}
      case 'list':
        return {code: 200, body: this.rest.list(rt, namespace, listQuery(query))}
      case 'create':
        if (subresource === 'eviction') return {code: 201, body: this.rest.evict(namespace!, name!, parseJson(), ctx)}
        return {code: 201, body: this.rest.create(rt, namespace, parseJson(), ctx)}
      case 'update':
        return {code: 200, body: this.rest.update(rt, namespace, name!, subresource, parseJson(), ctx)}
      case 'patch': {
        const type = mediaType(req.headers['content-type'])
        const r = this.rest.patch(rt, namespace, name!, subresource, type, raw, ctx)
        return {code: r.code, body: r.object}
      }
      case 'delete':
        return {code: 200, body: this.rest.delete(rt, namespace, name!, deleteOptions(query, parseJson(), ctx))}
      case 'deletecollection':
        return {code: 200, body: this.rest.deleteCollection(rt, namespace, listQuery(query), deleteOptions(query, parseJson(), ctx))}
      default:
        throw errors.methodNotAllowed()
    }
  }

  // ------------------------------------------------------------------ deprecated APIs

  /**
   * A request to a deprecated version is answered, warned about in a `Warning` header, and
   * counted in `apiserver_requested_deprecated_apis` until the server restarts, as the apiserver does.
   */
  private deprecationOf(route: ResourceRoute): string | undefined {
    const {rt, subresource} = route
    if (!rt.removedIn) return undefined
    const labels = {group: rt.group, removed_release: rt.removedIn, resource: rt.resource, subresource: subresource ?? '', version: rt.version}
    this.deprecatedRequested.set(JSON.stringify(labels), labels)
    return `${apiVersionOf(rt)} ${rt.kind} is deprecated, unavailable in v${rt.removedIn}+; use ${rt.replacement} ${rt.kind}`
  }

  /** A slice of the apiserver's Prometheus text: the deprecated-API gauge and a counter beside it. */
  private metricsText(): string {
    const lines = [
      '# HELP apiserver_requested_deprecated_apis [STABLE] Gauge of deprecated APIs that have been requested, broken out by API group, version, resource, subresource, and removed_release.',
      '# TYPE apiserver_requested_deprecated_apis gauge',
    ]
    for (const labels of this.deprecatedRequested.values()) {
      const text = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')
      lines.push(`apiserver_requested_deprecated_apis{${text}} 1`)
    }
    lines.push('# HELP apiserver_storage_objects [STABLE] Number of stored objects at the time of last check split by kind.', '# TYPE apiserver_storage_objects gauge')
    lines.push(`apiserver_storage_objects{resource="nodes"} ${this.store.list('nodes').length}`)
    return `${lines.join('\n')}\n`
  }

  /** The apiserver process restarted: its gauges start empty. */
  resetMetrics(): void {
    this.deprecatedRequested.clear()
  }

  // ------------------------------------------------------------------ watch

  private watch(req: IncomingMessage, res: ServerResponse, route: ResourceRoute, query: Record<string, string>): void {
    const {rt, namespace, name} = route
    const labels = parseLabelSelector(query.labelSelector)
    const fields = parseFieldSelector(query.fieldSelector, resourceKey(rt), !rt.builtin)
    const rvText = query.resourceVersion
    if (rvText !== undefined && rvText !== '' && !/^\d+$/.test(rvText)) throw errors.badRequest(`invalid resource version: ${rvText}`)
    const matches = (o: KubeObject | undefined): boolean =>
      !!o &&
      (namespace === undefined || o.metadata.namespace === namespace) &&
      (name === undefined || o.metadata.name === name) &&
      matchesLabels(labels, o.metadata.labels) &&
      matchesFields(fields, o)

    res.writeHead(200, {'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked'})
    res.flushHeaders()
    const write = (type: string, object: unknown): void => {
      if (!res.destroyed && !res.writableEnded) res.write(`${JSON.stringify({type, object})}\n`)
    }
    const forward = (e: StoreEvent): void => {
      if (e.rt.group !== rt.group || e.rt.resource !== rt.resource) return
      const object = {...e.object, apiVersion: apiVersionOf(rt)}
      const was = matches(e.old)
      const is = e.type !== 'DELETED' && matches(e.object)
      if (e.type === 'DELETED') {
        if (matches(e.object)) write('DELETED', object)
      } else if (was && is) write('MODIFIED', object)
      else if (is) write('ADDED', object)
      else if (was) write('DELETED', object)
    }

    let closed = false
    const cleanups: Array<() => void> = []
    const close = (): void => {
      if (closed) return
      closed = true
      for (const c of cleanups) c()
      this.watchClosers.delete(close)
      if (!res.writableEnded) res.end()
    }
    this.watchClosers.add(close)
    req.on('close', close)
    res.on('close', close)

    if (rvText === undefined || rvText === '' || rvText === '0') {
      for (const o of this.store.listIn(rt, namespace)) if (matches(o)) write('ADDED', o)
    } else {
      const events = this.store.eventsSince(Number(rvText))
      if (!events) {
        write('ERROR', errors.expired(`too old resource version: ${rvText} (${this.store.oldestWatchableResourceVersion})`).status)
        close()
        return
      }
      for (const e of events) forward(e)
    }
    cleanups.push(this.store.on(forward))

    const bookmark = (): void =>
      write('BOOKMARK', {kind: rt.kind, apiVersion: apiVersionOf(rt), metadata: {resourceVersion: String(this.store.resourceVersion)}})
    if (query.allowWatchBookmarks === 'true' || query.allowWatchBookmarks === '1') {
      cleanups.push(this.timers.every(this.opts.bookmarkIntervalMs, bookmark, 'watch-bookmark'))
    }
    const timeout = Number(query.timeoutSeconds)
    if (Number.isFinite(timeout) && timeout > 0) {
      cleanups.push(
        this.timers.after(timeout * 1000, () => {
          if (query.allowWatchBookmarks === 'true' || query.allowWatchBookmarks === '1') bookmark()
          close()
        }, 'watch-timeout'),
      )
    }
  }
}

function writeMethod(method: string): boolean {
  return method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE'
}

function parseForAudit(raw: string, contentType: string | undefined): unknown {
  try {
    return JSON.parse(raw)
  } catch {
    return mediaType(contentType) === PATCH_TYPES.apply ? raw : raw.slice(0, 4096)
  }
}

function verbOf(method: string, route: ResourceRoute, query: Record<string, string>): Verb {
  const hasName = route.name !== undefined
  switch (method) {
    case 'GET':
      if (query.watch === 'true' || query.watch === '1') return 'watch'
      return hasName ? 'get' : 'list'
    case 'POST':
      if (route.subresource === 'eviction' && hasName) return 'create'
      if (hasName) throw errors.methodNotAllowed()
      return 'create'
    case 'PUT':
      if (!hasName || route.subresource === 'eviction') throw errors.methodNotAllowed()
      return 'update'
    case 'PATCH':
      if (!hasName || route.subresource === 'eviction') throw errors.methodNotAllowed()
      return 'patch'
    case 'DELETE':
      if (route.subresource) throw errors.methodNotAllowed()
      return hasName ? 'delete' : 'deletecollection'
    default:
      throw errors.methodNotAllowed()
  }
}

function listQuery(query: Record<string, string>) {
  return {
    labelSelector: query.labelSelector,
    fieldSelector: query.fieldSelector,
    limit: query.limit ? Number(query.limit) : undefined,
    continue: query.continue,
  }
}

function deleteOptions(query: Record<string, string>, body: unknown, ctx: RequestContext) {
  const b = isPlainObject(body) ? body : {}
  const grace = query.gracePeriodSeconds ?? b.gracePeriodSeconds
  let propagationPolicy = (query.propagationPolicy ?? b.propagationPolicy) as 'Orphan' | 'Background' | 'Foreground' | undefined
  if ((query.orphanDependents ?? b.orphanDependents) === 'true' || b.orphanDependents === true) propagationPolicy = 'Orphan'
  return {
    gracePeriodSeconds: grace === undefined ? undefined : Number(grace),
    propagationPolicy,
    preconditions: isPlainObject(b.preconditions) ? (b.preconditions as {uid?: string; resourceVersion?: string}) : undefined,
    dryRun: ctx.dryRun || (Array.isArray(b.dryRun) && b.dryRun.includes('All')),
  }
}

