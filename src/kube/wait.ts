import type {KubeClients} from './client.js'
import {apiFailure} from './api-errors.js'
import {AbortedError, TimeoutError} from '../errors.js'
import {sleep} from '../sleep.js'

interface Listed<T> {
  items: T[]
  metadata?: {resourceVersion?: string}
}

interface Named {
  metadata?: {name?: string; namespace?: string}
}

export interface WaitForOptions<T extends Named, R> {
  kube: KubeClients
  /** The collection's API path, e.g. `/api/v1/nodes`. */
  path: string
  /** Lists the same collection as `path` with the same selectors. */
  list: () => Promise<Listed<T>>
  query?: {labelSelector?: string; fieldSelector?: string}
  /** Looks at the current objects (keyed namespace/name); a defined result ends the wait. */
  check: (objects: ReadonlyMap<string, T>) => R | undefined
  timeoutMs: number
  /** Says what we waited for, in the timeout message: "node agent-1 Ready at v1.32.0+k3s1". */
  description: string
  /** Tells the user what to look at when the wait times out. */
  hint?: string
  /** What the objects last seen show, for the timeout message ("Ready, but at v1.31.4+k3s1"). */
  seen?: (objects: ReadonlyMap<string, T>) => string | undefined
  signal?: AbortSignal
  /** Called when a list or watch fails and will be retried (e.g. the API server restarting). */
  onRetry?: (error: unknown) => void
}

const key = (object: Named) => `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`

/**
 * Waits by watch, not by sleep-polling: list once, check, then follow the watch from that
 * resourceVersion and check after every event. A 410 Gone or a dropped connection lists again
 * (the API server may be the node we just restarted), with short bounded pauses in between.
 * The whole wait is bounded by `timeoutMs`.
 */
export async function waitFor<T extends Named, R>(options: WaitForOptions<T, R>): Promise<R> {
  const {signal} = options
  const deadline = Date.now() + options.timeoutMs
  let pause = 200
  let lastError: unknown
  let lastSeen: ReadonlyMap<string, T> | undefined
  const check = (objects: ReadonlyMap<string, T>) => {
    lastSeen = objects
    return options.check(objects)
  }

  while (true) {
    if (signal?.aborted) throw new AbortedError(`cancelled while waiting for ${options.description}`)
    const remaining = deadline - Date.now()
    if (remaining <= 0) {
      const seen = lastSeen && options.seen?.(lastSeen)
      const why = `${seen ? `: ${seen}` : ''}${lastError ? ` (last error: ${apiFailure(lastError).message})` : ''}`
      throw new TimeoutError(`timed out after ${Math.round(options.timeoutMs / 1000)}s waiting for ${options.description}${why}`, {
        hint: options.hint,
      })
    }
    try {
      const listed = await options.list()
      const objects = new Map(listed.items.map((item) => [key(item), item]))
      const done = check(objects)
      if (done !== undefined) return done
      const outcome = await followWatch({...options, check}, objects, listed.metadata?.resourceVersion, deadline)
      if (outcome.done) return outcome.value as R
      lastError = outcome.error ?? lastError
      if (outcome.error) options.onRetry?.(outcome.error)
      if (outcome.error === undefined) continue
    } catch (error) {
      if (error instanceof AbortedError) throw error
      lastError = error
      options.onRetry?.(error)
    }
    await sleep(Math.min(pause, Math.max(0, deadline - Date.now())), signal)
    pause = Math.min(pause * 2, 2000)
  }
}

type WatchOutcome = {done: true; value: unknown} | {done: false; error?: unknown}

function followWatch<T extends Named, R>(
  options: WaitForOptions<T, R>,
  objects: Map<string, T>,
  resourceVersion: string | undefined,
  deadline: number,
): Promise<WatchOutcome> {
  return new Promise<WatchOutcome>((resolve) => {
    let settled = false
    let controller: AbortController | undefined
    const finish = (outcome: WatchOutcome) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      controller?.abort()
      resolve(outcome)
    }
    const onAbort = () => finish({done: false})
    const timer = setTimeout(() => finish({done: false}), Math.max(0, deadline - Date.now()))
    options.signal?.addEventListener('abort', onAbort, {once: true})

    const timeoutSeconds = Math.max(1, Math.min(300, Math.ceil((deadline - Date.now()) / 1000)))
    options.kube.watch
      .watch(
        options.path,
        {...options.query, resourceVersion, allowWatchBookmarks: true, timeoutSeconds},
        (type: string, object: T & {code?: number}) => {
          if (type === 'ERROR') {
            // 410 Gone: our resourceVersion is too old; list again.
            finish({done: false, error: object?.code === 410 ? undefined : object})
            return
          }
          if (type === 'BOOKMARK') return
          if (type === 'DELETED') objects.delete(key(object))
          else objects.set(key(object), object)
          const value = options.check(objects)
          if (value !== undefined) finish({done: true, value})
        },
        (error: unknown) => finish({done: false, error: error ?? undefined}),
      )
      .then((c) => {
        controller = c
        if (settled) c.abort()
      })
      .catch((error: unknown) => finish({done: false, error}))
  })
}
