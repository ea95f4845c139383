import {Listr, type ListrTask} from 'listr2'

import type {UpgradePlan} from '../../src/upgrade/types.js'
import type {UpgradeEvent} from '../../src/upgrade/run-upgrade.js'
import {describeEvent, withoutNode} from './events.js'

interface Deferred {
  promise: Promise<{skip?: string}>
  resolve: (value: {skip?: string}) => void
  reject: (error: Error) => void
}

function deferred(): Deferred {
  let resolve!: Deferred['resolve']
  let reject!: Deferred['reject']
  const promise = new Promise<{skip?: string}>((res, rej) => {
    resolve = res
    reject = rej
  })
  promise.catch(() => undefined)
  return {promise, resolve, reject}
}

/**
 * listr2 as a view of the saga's events: one task per step, one subtask per node, agents shown
 * concurrently. It never drives anything; the saga runs on its own and this only follows.
 */
export class ListrView {
  private plan?: UpgradePlan
  private readonly pending = new Map<string, Deferred>()
  private readonly outputs = new Map<string, (text: string) => void>()
  private chain: Promise<void> = Promise.resolve()

  constructor(private readonly concurrency: number, private readonly writeLine: (line: string) => void) {}

  private get(key: string): Deferred {
    let entry = this.pending.get(key)
    if (!entry) {
      entry = deferred()
      this.pending.set(key, entry)
    }
    return entry
  }

  private render(tasks: ListrTask[]): void {
    const listr = new Listr(tasks, {exitOnError: false, rendererOptions: {collapseSubtasks: false, showErrorMessage: true}})
    this.chain = this.chain.then(() => listr.run().then(() => undefined, () => undefined))
  }

  private line(text: string): void {
    this.chain = this.chain.then(() => this.writeLine(text))
  }

  readonly handle = (event: UpgradeEvent): void => {
    switch (event.type) {
      case 'plan':
        this.plan = event.plan
        this.line(describeEvent(event) as string)
        return
      case 'step-started': {
        const nodes = event.step === 'servers' ? this.plan?.servers : event.step === 'agents' ? this.plan?.agents : undefined
        const stepKey = `step:${event.step}`
        this.render([
          {
            title: event.title,
            task: async (_ctx, task) => {
              this.outputs.set(stepKey, (text) => (task.output = text))
              if (nodes && nodes.length > 0) {
                return task.newListr(
                  nodes.map((node) => ({
                    title: node.name,
                    task: async (_c: unknown, sub: {output: string; skip: (message: string) => void}) => {
                      const key = `action:${event.step}:${node.name}`
                      this.outputs.set(key, (text) => (sub.output = text))
                      const result = await this.get(key).promise
                      if (result.skip) sub.skip(`${node.name}: ${result.skip}`)
                    },
                  })),
                  {concurrent: event.step === 'agents' ? this.concurrency : false, exitOnError: false},
                )
              }
              const result = await this.get(stepKey).promise
              if (result.skip) task.skip(`${event.title}: ${result.skip}`)
            },
          },
        ])
        return
      }
      case 'step-finished':
        this.get(`step:${event.step}`).resolve({})
        return
      case 'step-skipped':
        this.get(`step:${event.step}`).resolve({skip: event.reason})
        return
      case 'step-failed':
        this.get(`step:${event.step}`).reject(new Error(event.error.message))
        this.rejectOpenActions(event.step, event.error.message)
        return
      case 'step-interrupted':
        this.get(`step:${event.step}`).reject(new Error('interrupted'))
        this.rejectOpenActions(event.step, 'interrupted')
        return
      case 'action-finished':
        this.get(`action:${event.step}:${event.node}`).resolve({})
        return
      case 'action-skipped':
        this.get(`action:${event.step}:${event.node}`).resolve({skip: event.reason})
        return
      case 'action-failed':
        this.get(`action:${event.step}:${event.node}`).reject(new Error(withoutNode(event.node, event.error.message)))
        return
      case 'action-interrupted':
        this.get(`action:${event.step}:${event.node}`).reject(new Error('interrupted'))
        return
      case 'log': {
        const key = event.node && event.step ? `action:${event.step}:${event.node}` : event.step ? `step:${event.step}` : undefined
        const set = key ? this.outputs.get(key) : undefined
        if (set) set(event.message)
        else if (event.level !== 'debug') this.line(describeEvent(event) as string)
        return
      }
      case 'action-started':
      case 'compensation-registered':
        return
      default: {
        const text = describeEvent(event)
        if (text) this.line(text)
      }
    }
  }

  /** Nodes of a failed step that never started would otherwise wait forever. */
  private rejectOpenActions(step: string, message: string): void {
    const nodes = step === 'servers' ? this.plan?.servers : step === 'agents' ? this.plan?.agents : []
    for (const node of nodes ?? []) this.get(`action:${step}:${node.name}`).resolve({skip: `not started (${message})`})
  }

  async close(): Promise<void> {
    await this.chain
  }
}
