/**
 * Every timer the simulation starts goes through here, so `stop()` can cancel all of them and
 * a failing callback is recorded instead of crashing the test process.
 */
export class Timers {
  private readonly pending = new Set<NodeJS.Timeout>()
  private stopped = false
  /** Errors thrown by timer callbacks: a test can assert this stays empty. */
  readonly errors: Array<{label: string; error: unknown}> = []

  /** `ms` of Infinity means never (setTimeout would fire at once instead). */
  after(ms: number, fn: () => void | Promise<void>, label = 'timer'): () => void {
    if (this.stopped || !(ms < Infinity)) return () => {}
    const t = setTimeout(() => {
      this.pending.delete(t)
      this.run(fn, label)
    }, Math.max(0, ms))
    this.pending.add(t)
    return () => {
      clearTimeout(t)
      this.pending.delete(t)
    }
  }

  every(ms: number, fn: () => void | Promise<void>, label = 'interval'): () => void {
    if (this.stopped) return () => {}
    const t = setInterval(() => this.run(fn, label), Math.max(1, ms))
    this.pending.add(t)
    return () => {
      clearInterval(t)
      this.pending.delete(t)
    }
  }

  /** Run soon, outside the caller's stack (controllers react to store events this way). */
  soon(fn: () => void | Promise<void>, label = 'soon'): () => void {
    return this.after(0, fn, label)
  }

  get size(): number {
    return this.pending.size
  }

  cancelAll(): void {
    this.stopped = true
    for (const t of this.pending) {
      clearTimeout(t)
      clearInterval(t)
    }
    this.pending.clear()
  }

  private run(fn: () => void | Promise<void>, label: string): void {
    try {
      const r = fn()
      if (r && typeof (r as Promise<void>).catch === 'function') {
        ;(r as Promise<void>).catch((error: unknown) => this.errors.push({label, error}))
      }
    } catch (error) {
      this.errors.push({label, error})
    }
  }
}
