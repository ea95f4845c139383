import type {KubeClients} from './client.js'
import {AbortedError, TimeoutError} from '../errors.js'
import {sleep} from '../sleep.js'

/**
 * /readyz cannot be watched, so this one wait polls — with a growing pause, bounded in time,
 * ending at the first 200. Used after a server's service restarts, when the API may be gone a while.
 */
export async function waitForApiReady(kube: KubeClients, timeoutMs: number, options: {service: string; signal?: AbortSignal}): Promise<void> {
  const {service, signal} = options
  const deadline = Date.now() + timeoutMs
  let pause = 100
  while (true) {
    if (signal?.aborted) throw new AbortedError('cancelled while waiting for the API server')
    const attempt = AbortSignal.timeout(Math.max(1, Math.min(10_000, deadline - Date.now())))
    const ready = await kube.health.readyz({signal: signal ? AbortSignal.any([signal, attempt]) : attempt} as never).catch(() => false)
    if (ready) return
    if (Date.now() + pause > deadline) {
      throw new TimeoutError(`the API server ${kube.server} did not answer /readyz within ${Math.round(timeoutMs / 1000)}s`, {
        hint: `check the ${service} service on the server just restarted (journalctl -u ${service}), or raise upgrade.timeouts.apiReady`,
      })
    }
    await sleep(pause, signal)
    pause = Math.min(pause * 2, 2000)
  }
}
