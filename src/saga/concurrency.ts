import {UsageError} from '../errors.js'

export type ItemOutcome<T, R> =
  | {item: T; index: number; status: 'fulfilled'; value: R}
  | {item: T; index: number; status: 'rejected'; error: unknown}
  /** Not started because an earlier item failed or the signal was aborted. */
  | {item: T; index: number; status: 'not-started'}

/**
 * Runs `fn` over `items`, at most `limit` at a time, in order of the items.
 *
 * After the first failure, or once `signal` is aborted, no new item starts; the ones already in
 * flight always run to their end, because a node action stopped halfway is worse than one that
 * finished. Never rejects: every item gets an outcome, in the order of `items`.
 */
export async function mapWithConcurrency<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  signal?: AbortSignal,
): Promise<Array<ItemOutcome<T, R>>> {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new UsageError(`concurrency must be a whole number of at least 1, got ${limit}`, {
      hint: 'pass --concurrency 1 or more',
    })
  }

  const outcomes: Array<ItemOutcome<T, R>> = items.map((item, index) => ({item, index, status: 'not-started'}))
  let next = 0
  let failed = false

  const worker = async (): Promise<void> => {
    while (next < items.length && !failed && !signal?.aborted) {
      const index = next++
      const item = items[index] as T
      try {
        // Through a promise so that a synchronous throw in fn is an outcome, not a crash.
        const value = await Promise.resolve().then(() => fn(item, index))
        outcomes[index] = {item, index, status: 'fulfilled', value}
      } catch (error) {
        failed = true
        outcomes[index] = {item, index, status: 'rejected', error}
      }
    }
  }

  await Promise.all(Array.from({length: Math.min(limit, items.length)}, worker))
  return outcomes
}

/**
 * Promise.allSettled with at most `limit` calls in flight: for read-only work on many nodes that
 * must hear from every node (status, pre-flight) without opening 200 connections at once.
 */
export async function settleWithConcurrency<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<Array<PromiseSettledResult<R>>> {
  const results: Array<PromiseSettledResult<R>> = new Array(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++
      results[index] = await fn(items[index]).then(
        (value) => ({status: 'fulfilled', value}) as const,
        (reason: unknown) => ({status: 'rejected', reason}) as const,
      )
    }
  }
  await Promise.all(Array.from({length: Math.min(limit, items.length)}, worker))
  return results
}
