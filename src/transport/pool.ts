import type {Transport} from './types.js'

/**
 * One transport per node, made on first use and kept, so every step of a run reuses the
 * node's one SSH connection. `closeAll()` ends them all (also after a failure).
 */
export class TransportPool<T extends Transport = Transport> {
  private readonly transports = new Map<string, T>()
  private closed = false

  constructor(private readonly factory: (node: string) => T) {}

  get(node: string): T {
    if (this.closed) throw new Error(`transport pool is closed (asked for ${node})`)
    let transport = this.transports.get(node)
    if (!transport) {
      transport = this.factory(node)
      this.transports.set(node, transport)
    }
    return transport
  }

  /** Nodes that have a transport now. */
  nodes(): string[] {
    return [...this.transports.keys()]
  }

  /** Closes every transport; failures are collected, not allowed to stop the others. */
  async closeAll(): Promise<void> {
    this.closed = true
    const entries = [...this.transports.entries()]
    this.transports.clear()
    const results = await Promise.allSettled(entries.map(([, t]) => t.close()))
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`${entries[i]![0]}: ${(r.reason as Error)?.message ?? r.reason}`] : []))
    if (failed.length > 0) throw new AggregateError(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason), `closing transports failed: ${failed.join('; ')}`)
  }
}
