import {abortReason} from './ssh-context.js'

/**
 * Runs fn with at most `limit` at once: sshd refuses channels beyond its MaxSessions, so the
 * transport queues its own instead. A caller's abort takes it out of the queue.
 */
export class SessionLimit {
  private active = 0
  private readonly waiting: Array<() => void> = []
  constructor(private readonly limit: number) {}
  async use<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.active >= this.limit) {
      await new Promise<void>((resolve, reject) => {
        const go = () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        }
        const onAbort = () => {
          const i = this.waiting.indexOf(go)
          if (i !== -1) this.waiting.splice(i, 1)
          reject(abortReason(signal, 'waiting for a free SSH session'))
        }
        signal?.addEventListener('abort', onAbort, {once: true})
        this.waiting.push(go)
      })
    }
    this.active++
    try {
      return await fn()
    } finally {
      this.active--
      this.waiting.shift()?.()
    }
  }
}
