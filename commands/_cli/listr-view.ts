import {Listr, type ListrTask} from 'listr2'

import type {UpgradeEvent} from '../../src/upgrade/run-upgrade.js'
import {describeEvent, withoutNode} from './events.js'
import {COUNTED_STEPS, nodesOfStep, ProgressModel, type PreflightLine, type PreflightState} from './progress-model.js'

interface Outcome {
  skip?: string
}

interface Deferred {
  promise: Promise<Outcome>
  resolve: (value: Outcome) => void
  reject: (error: Error) => void
}

function deferred(): Deferred {
  let resolve!: Deferred['resolve']
  let reject!: Deferred['reject']
  const promise = new Promise<Outcome>((res, rej) => {
    resolve = res
    reject = rej
  })
  promise.catch(() => undefined)
  return {promise, resolve, reject}
}

/** The map's promise for `key`, made on first ask (whoever comes first, the waiting task or the event). */
function deferredIn<K>(map: Map<K, Deferred>, key: K): Deferred {
  let entry = map.get(key)
  if (!entry) {
    entry = deferred()
    map.set(key, entry)
  }
  return entry
}

/** Pre-flight lines as they appear, for the task that shows them; ends with the plan. */
class LineFeed {
  private queue: PreflightLine[] = []
  private wake?: () => void
  ended = false
  finalTitle = ''

  push(lines: PreflightLine[]): void {
    this.queue.push(...lines)
    if (lines.length > 0) this.poke()
  }

  end(title: string): void {
    this.ended = true
    this.finalTitle = title
    this.poke()
  }

  /** The lines that came since the last call, once there are some or the feed has ended. */
  async take(): Promise<PreflightLine[]> {
    while (this.queue.length === 0 && !this.ended) await new Promise<void>((resolve) => (this.wake = resolve))
    return this.queue.splice(0)
  }

  private poke(): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }
}

type Tick = ReturnType<typeof setInterval>

/**
 * listr2 as a view of the saga's events: pre-flight as a task with a line per node, one task per
 * step, one subtask per node, agents shown concurrently with `done/total` and the time left. It
 * never drives anything; the saga runs on its own and this only follows. What to show comes from
 * ProgressModel (pure, tested); this file only maps it onto listr2 tasks.
 */
export class ListrView {
  private readonly model: ProgressModel
  private readonly pending = new Map<string, Deferred>()
  /** Per pre-flight line (each hop has its own line objects, with the same node names). */
  private readonly lines = new Map<PreflightLine, Deferred>()
  private readonly outputs = new Map<string, (text: string) => void>()
  private readonly titles = new Map<string, (text: string) => void>()
  private feed?: LineFeed
  private ticker?: Tick
  private chain: Promise<void> = Promise.resolve()

  constructor(
    private readonly concurrency: number,
    private readonly writeLine: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.model = new ProgressModel(concurrency)
  }

  private get(key: string): Deferred {
    return deferredIn(this.pending, key)
  }

  private render(tasks: ListrTask[]): void {
    // Signals belong to the saga runner (Ctrl-C finishes or undoes the node in flight): listr2 must not exit the process.
    const listr = new Listr(tasks, {exitOnError: false, registerSignalListeners: false, rendererOptions: {collapseSubtasks: false, showErrorMessage: true}})
    this.chain = this.chain.then(() => listr.run().then(() => undefined, () => undefined))
  }

  private line(text: string): void {
    this.chain = this.chain.then(() => this.writeLine(text))
  }

  readonly handle = (event: UpgradeEvent): void => {
    const change = this.model.apply(event, this.now())
    if (change.preflightStarted) this.startPreflight(change.preflightStarted)
    this.feed?.push(change.added)
    for (const line of change.settled) this.settleLine(line)
    if (change.preflightEnded) this.endPreflight(change.preflightEnded)
    if (change.consumed) return

    switch (event.type) {
      case 'step-started':
        this.startStep(event.step, event.title)
        return
      case 'step-finished':
        this.get(`step:${event.step}`).resolve({})
        break
      case 'step-skipped':
        this.get(`step:${event.step}`).resolve({skip: event.reason})
        break
      case 'step-failed':
        this.get(`step:${event.step}`).reject(new Error(event.error.message))
        this.rejectOpenActions(event.step, event.error.message)
        break
      case 'step-interrupted':
        this.get(`step:${event.step}`).reject(new Error('interrupted'))
        this.rejectOpenActions(event.step, 'interrupted')
        break
      case 'action-finished':
        this.get(`action:${event.step}:${event.node}`).resolve({})
        break
      case 'action-skipped':
        this.get(`action:${event.step}:${event.node}`).resolve({skip: event.reason})
        break
      case 'action-failed':
        this.get(`action:${event.step}:${event.node}`).reject(new Error(withoutNode(event.node, event.error.message)))
        break
      case 'action-interrupted':
        this.get(`action:${event.step}:${event.node}`).reject(new Error('interrupted'))
        break
      case 'log': {
        const key = event.node && event.step ? `action:${event.step}:${event.node}` : event.step ? `step:${event.step}` : undefined
        const set = key ? this.outputs.get(key) : undefined
        if (set) set(event.message)
        else if (event.level !== 'debug') this.line(describeEvent(event) as string)
        return
      }
      case 'action-started':
      case 'compensation-registered':
        break
      default: {
        const text = describeEvent(event)
        if (text) this.line(text)
        return
      }
    }
    if ('step' in event) this.retitle(event.step)
  }

  // -------------------------------------------------------------------------------------------
  // Pre-flight: a task whose subtasks are the lines, added as they come (a title-less tail task
  // waits for more and nests the next batch at the same level).

  private startPreflight(preflight: PreflightState): void {
    this.feed?.end('')
    const feed = new LineFeed()
    this.feed = feed
    this.render([
      {
        title: `Pre-flight checks for ${preflight.target}`,
        task: (_ctx, task) => task.newListr([this.tail(feed, (title) => (task.title = title))], {concurrent: true, exitOnError: false}),
      },
    ])
  }

  private tail(feed: LineFeed, setTitle: (title: string) => void): ListrTask {
    return {
      task: async (_ctx, task) => {
        const lines = await feed.take()
        if (lines.length === 0) {
          if (feed.finalTitle) setTitle(feed.finalTitle)
          return
        }
        return task.newListr([...lines.map((line) => this.lineTask(line)), this.tail(feed, setTitle)], {concurrent: true, exitOnError: false})
      },
    }
  }

  private lineTask(line: PreflightLine): ListrTask {
    return {
      title: line.text,
      task: async (_ctx, task) => {
        await this.settled(line).promise
        if (line.state === 'skipped') return task.skip(line.text)
        task.title = line.text
        if (line.state === 'failed') throw new Error(line.text)
      },
    }
  }

  private settled(line: PreflightLine): Deferred {
    return deferredIn(this.lines, line)
  }

  private settleLine(line: PreflightLine): void {
    this.settled(line).resolve({})
  }

  private endPreflight(preflight: PreflightState): void {
    const title = `Pre-flight checks for ${preflight.target}: ${preflight.state === 'done' ? preflight.summary : 'stopped before a plan (see below)'}`
    this.feed?.end(title)
    this.feed = undefined
  }

  // -------------------------------------------------------------------------------------------
  // Steps.

  private startStep(step: string, title: string): void {
    const nodes = nodesOfStep(step, this.model.plan)
    const stepKey = `step:${step}`
    const counted = COUNTED_STEPS.has(step)
    this.render([
      {
        title: this.model.title(step, this.now()) ?? title,
        task: async (_ctx, task) => {
          this.outputs.set(stepKey, (text) => (task.output = text))
          if (counted) {
            this.titles.set(step, (text) => (task.title = text))
            this.retitle(step)
            this.tick()
          }
          if (nodes && nodes.length > 0) {
            const actions: ListrTask[] = nodes.map((node) => ({
              title: node,
              task: async (_c, sub) => {
                const key = `action:${step}:${node}`
                this.outputs.set(key, (text) => (sub.output = text))
                const result = await this.get(key).promise
                if (result.skip) sub.skip(`${node}: ${result.skip}`)
              },
            }))
            // Title-less and last (it starts once every node has): the step stays open until the saga says it ended, so its final title lands before listr2 stops drawing.
            const end: ListrTask = {task: () => this.get(stepKey).promise.then(() => undefined, () => undefined)}
            return task.newListr([...actions, end], {concurrent: counted ? this.concurrency : false, exitOnError: false})
          }
          const result = await this.get(stepKey).promise
          if (result.skip) task.skip(`${title}: ${result.skip}`)
        },
      },
    ])
  }

  private retitle(step: string): void {
    const set = this.titles.get(step)
    const title = this.model.title(step, this.now())
    if (set && title) set(title)
  }

  /** The estimate counts down between events: once a second while a counted step runs. */
  private tick(): void {
    if (this.ticker) return
    this.ticker = setInterval(() => {
      let open = false
      for (const [step, stage] of this.model.stages) {
        if (stage.endedAt !== undefined) continue
        open = true
        this.retitle(step)
      }
      if (!open) this.stopTicker()
    }, 1000)
    this.ticker.unref()
  }

  private stopTicker(): void {
    if (this.ticker) clearInterval(this.ticker)
    this.ticker = undefined
  }

  /** Nodes of a failed step that never started would otherwise wait forever. */
  private rejectOpenActions(step: string, message: string): void {
    for (const node of nodesOfStep(step, this.model.plan) ?? []) this.get(`action:${step}:${node}`).resolve({skip: `not started (${message})`})
  }

  async close(): Promise<void> {
    const change = this.model.stop()
    for (const line of change.settled) this.settleLine(line)
    if (change.preflightEnded) this.endPreflight(change.preflightEnded)
    await this.chain
    this.stopTicker()
  }
}
