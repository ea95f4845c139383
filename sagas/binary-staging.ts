/**
 * The new binary (and, on air-gapped nodes, the images archives: image-archives.ts) is put
 * beside the live one on every node of the run in the background, from the
 * servers step on, in plan order and a few nodes at once, so that a node's action finds it
 * waiting there: between a node's drain and its restart only the swap (one rename) is left on
 * the critical path, where the push and its sha256 check used to be. Staging changes nothing a
 * node runs (the staged file is a hidden name no service starts), so doing it early is safe; a
 * node whose staging failed fails its own action when it comes to it, before it is cordoned.
 */
import {AbortedError, ConnectionError} from '../src/errors.js'
import type {PlannedNode} from '../src/upgrade/types.js'

export interface NodeStage {
  /** sha256 of the live binary when the stage looked (undefined: no binary there). */
  liveSha?: string
  /** The verified new binary's path on the node; undefined when the live binary is the new one already. */
  stagedPath?: string
  /** The images archives staged beside the live ones, to be put in place before the swap. */
  stagedArchives?: string[]
}

export type StageNode = (node: PlannedNode, signal: AbortSignal) => Promise<NodeStage>

interface Settle {
  resolve: (stage: NodeStage) => void
  reject: (error: unknown) => void
}

/** A copy cut short by a lost connection is made again on a new one (nothing was swapped yet), twice at most. */
export async function copyRetrying<T>(log: (message: string) => void, signal: AbortSignal, copy: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await copy()
    } catch (error) {
      if (!(error instanceof ConnectionError) || signal.aborted || attempt >= 3) throw error
      log('connection lost during the copy; copying again on a new connection')
    }
  }
}

export class BinaryStaging {
  private readonly stages = new Map<string, Promise<NodeStage>>()
  private readonly settles = new Map<string, Settle>()
  private queue: PlannedNode[] = []
  private running = 0
  /** Nodes whose staged file this process wrote or found: what a failed run cleans up. */
  readonly staged = new Set<string>()
  /** Nodes with images archives staged and not yet put in place. */
  readonly stagedArchives = new Set<string>()

  constructor(
    private readonly stage: StageNode,
    private readonly limit: number,
    private readonly signal: AbortSignal,
  ) {}

  /** Queues every node not queued yet, in the order given; at most `limit` stage at once. */
  start(nodes: readonly PlannedNode[]): void {
    for (const node of nodes) if (!this.stages.has(node.name)) this.enqueue(node)
    this.pump()
  }

  /** The node's stage, started now (ahead of the queue) when it was not queued. */
  get(node: PlannedNode): Promise<NodeStage> {
    if (!this.stages.has(node.name)) {
      this.enqueue(node, true)
      this.pump()
    }
    return this.stages.get(node.name) as Promise<NodeStage>
  }

  private enqueue(node: PlannedNode, first = false): void {
    let settle!: Settle
    const promise = new Promise<NodeStage>((resolve, reject) => {
      settle = {resolve, reject}
    })
    // Awaited only when the node's action comes: until then a failure must not be "unhandled".
    promise.catch(() => undefined)
    this.stages.set(node.name, promise)
    this.settles.set(node.name, settle)
    if (first) this.queue.unshift(node)
    else this.queue.push(node)
  }

  private pump(): void {
    while (this.running < this.limit && this.queue.length > 0) {
      const node = this.queue.shift() as PlannedNode
      const settle = this.settles.get(node.name)!
      if (this.signal.aborted) {
        settle.reject(new AbortedError(`cancelled before the new binary was staged on ${node.name}`))
        continue
      }
      this.running++
      this.stage(node, this.signal)
        .then((stage) => {
          if (stage.stagedPath) this.staged.add(node.name)
          settle.resolve(stage)
        }, settle.reject)
        .finally(() => {
          this.running--
          this.pump()
        })
    }
  }
}
