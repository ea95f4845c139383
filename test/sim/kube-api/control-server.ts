/**
 * The plain-HTTP side door the fake k3s binaries report to (see the brief's contracts):
 * `POST /nodes/<node>/k3s-started` with `{"version","arch","role"}` and
 * `POST /nodes/<node>/k3s-stopped`, both answered 204. Loopback only.
 */
import http from 'node:http'
import type {Socket} from 'node:net'
import type {K3sStartInfo, NodeLifecycle} from './nodes.js'

export class ControlServer {
  private readonly server: http.Server
  private readonly sockets = new Set<Socket>()
  private port = 0

  constructor(private readonly lifecycle: NodeLifecycle) {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => this.handle(req.method ?? 'GET', req.url ?? '/', Buffer.concat(chunks).toString('utf8'), res))
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

  private handle(method: string, url: string, body: string, res: http.ServerResponse): void {
    const reply = (code: number, text = ''): void => {
      res.writeHead(code, text ? {'Content-Type': 'text/plain; charset=utf-8'} : {})
      res.end(text)
    }
    const path = new URL(url, 'http://127.0.0.1').pathname
    if (method === 'GET' && path === '/healthz') return reply(200, 'ok')
    const m = path.match(/^\/nodes\/([^/]+)\/(k3s-started|k3s-stopped)$/)
    if (!m) return reply(404, 'not found')
    if (method !== 'POST') return reply(405, 'method not allowed')
    const node = decodeURIComponent(m[1])
    let info: Partial<K3sStartInfo> = {}
    if (body.trim()) {
      try {
        info = JSON.parse(body) as Partial<K3sStartInfo>
      } catch {
        return reply(400, 'body is not JSON')
      }
    }
    if (m[2] === 'k3s-started') {
      if (typeof info.version !== 'string' || !/^v\d+\.\d+\.\d+/.test(info.version)) return reply(400, 'k3s-started needs {"version": "v1.x.y+k3sN"}')
      if (info.role !== undefined && info.role !== 'server' && info.role !== 'agent') return reply(400, 'role must be server or agent')
      this.lifecycle.started(node, {version: info.version, arch: info.arch, role: info.role})
    } else {
      this.lifecycle.stopped(node)
    }
    reply(204)
  }
}
