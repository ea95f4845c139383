/**
 * The plain-HTTP side door the fakes report to. Loopback only.
 *
 * - `POST /nodes/<node>/k3s-started` `{"version","arch","role","images"?}` (header
 *   `x-homelab-sim-job-started-ms`: when the service manager took the start, if it said), `POST /nodes/<node>/k3s-stopped`:
 *   the k3s / rke2 service came up or went down (204). `images`: `{"mode": "pull"|"archive",
 *   "imported": [file...], "ready": bool}`, what the binary imported from its agent images dir;
 *   `ready: false` keeps the Node NotReady (nodes.ts).
 * - `POST /nodes/<node>/kubelet-started` `{"version","arch"}`, `POST /nodes/<node>/kubelet-stopped`:
 *   the same for a kubeadm node's kubelet, which is not the API server (204).
 * - `GET /kubeadm/state`: what kubeadm reads before it acts (KubeadmState, JSON).
 * - `POST /nodes/<node>/static-pods` `{"version","etcdVersion"?,"components"?}`: that node's
 *   kubelet restarts its static pods at the new image tags (`upgrade apply` / `upgrade node`).
 * - `POST /kubeadm/apply` `{"node","version","dnsVersion"?}`: the cluster-wide part of
 *   `kubeadm upgrade apply` (kubeadm-config's kubernetesVersion, kubelet-config, kube-proxy, CoreDNS).
 * The kubeadm calls answer `{}` (200) or `{"error": "..."}` (409) with the error kubeadm reports.
 */
import http from 'node:http'
import type {Socket} from 'node:net'
import type {KubeadmCluster} from './kubeadm.js'
import type {K3sStartImages, K3sStartInfo, NodeLifecycle} from './nodes.js'

/** The start report's header naming when the service manager took the job (ms since the epoch). */
export const JOB_STARTED_HEADER = 'x-homelab-sim-job-started-ms'

/** A k3s-started report's `images`: undefined when absent, null when malformed. */
function startImages(value: unknown): K3sStartImages | undefined | null {
  if (value === undefined) return undefined
  const v = value as Partial<K3sStartImages> | null
  if (!v || typeof v !== 'object' || (v.mode !== 'pull' && v.mode !== 'archive') || typeof v.ready !== 'boolean') return null
  if (!Array.isArray(v.imported) || !v.imported.every((f) => typeof f === 'string')) return null
  return {mode: v.mode, imported: [...v.imported], ready: v.ready}
}

export class ControlServer {
  private readonly server: http.Server
  private readonly sockets = new Set<Socket>()
  private port = 0

  constructor(
    private readonly lifecycle: NodeLifecycle,
    private readonly kubeadm: KubeadmCluster,
  ) {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => this.handle(req.method ?? 'GET', req.url ?? '/', Buffer.concat(chunks).toString('utf8'), res, req.headers))
    })
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s)
      s.on('close', () => this.sockets.delete(s))
    })
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(0, '127.0.0.1', () => resolve())
    })
    this.port = (this.server.address() as {port: number}).port
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const s of this.sockets) s.destroy()
    await closed
  }

  private handle(method: string, url: string, body: string, res: http.ServerResponse, headers: http.IncomingHttpHeaders = {}): void {
    const reply = (code: number, text = ''): void => {
      res.writeHead(code, text ? {'Content-Type': 'text/plain; charset=utf-8'} : {})
      res.end(text)
    }
    const json = (code: number, value: unknown): void => {
      res.writeHead(code, {'Content-Type': 'application/json'})
      res.end(JSON.stringify(value))
    }
    const path = new URL(url, 'http://127.0.0.1').pathname
    if (method === 'GET' && path === '/healthz') return reply(200, 'ok')
    if (path === '/kubeadm/state') return method === 'GET' ? json(200, this.kubeadm.state()) : reply(405, 'method not allowed')
    const m = path.match(/^\/nodes\/([^/]+)\/(k3s-started|k3s-stopped|kubelet-started|kubelet-stopped|static-pods)$/)
    if (!m && path !== '/kubeadm/apply') return reply(404, 'not found')
    if (method !== 'POST') return reply(405, 'method not allowed')
    let info: Record<string, unknown> = {}
    if (body.trim()) {
      try {
        info = JSON.parse(body) as Record<string, unknown>
      } catch {
        return reply(400, 'body is not JSON')
      }
    }
    const version = typeof info.version === 'string' && /^v\d+\.\d+\.\d+/.test(info.version) ? info.version : undefined
    // kubeadm's requests answer JSON: {} or {"error": "<what kubeadm would report>"} with 409.
    const kubeadmCall = (fn: () => void): void => {
      if (!version) return json(400, {error: 'needs {"version": "v1.x.y"}'})
      try {
        fn()
        json(200, {})
      } catch (e) {
        json(409, {error: e instanceof Error ? e.message : String(e)})
      }
    }
    if (!m) {
      const node = typeof info.node === 'string' ? info.node : ''
      return kubeadmCall(() => this.kubeadm.apply({node, version: version!, dnsVersion: typeof info.dnsVersion === 'string' ? info.dnsVersion : undefined}))
    }
    const node = decodeURIComponent(m[1]!)
    const what = m[2]!
    if (what === 'static-pods') {
      const etcdVersion = typeof info.etcdVersion === 'string' ? info.etcdVersion : undefined
      const components = Array.isArray(info.components) ? info.components.map(String) : undefined
      return kubeadmCall(() => this.kubeadm.upgradeStaticPods(node, {version: version!, etcdVersion, components}))
    }
    if (what === 'k3s-started' || what === 'kubelet-started') {
      if (!version) return reply(400, `${what} needs {"version": "v1.x.y${what === 'k3s-started' ? '+k3sN' : ''}"}`)
      if (info.role !== undefined && info.role !== 'server' && info.role !== 'agent') return reply(400, 'role must be server or agent')
      const images = startImages(info.images)
      if (images === null) return reply(400, 'images must be {"mode": "pull"|"archive", "imported": [file...], "ready": true|false}')
      const job = Number(headers[JOB_STARTED_HEADER])
      const jobStartedMs = Number.isFinite(job) && job > 0 ? job : undefined
      const start: K3sStartInfo = {version, arch: typeof info.arch === 'string' ? info.arch : undefined, role: info.role as K3sStartInfo['role'], ...(images ? {images} : {}), ...(jobStartedMs !== undefined ? {jobStartedMs} : {})}
      this.lifecycle.started(node, start, what)
      if (what === 'kubelet-started') this.kubeadm.kubeletStarted(node, version)
    } else {
      this.lifecycle.stopped(node, what as 'k3s-stopped' | 'kubelet-stopped')
    }
    reply(204)
  }
}
