/**
 * A level-triggered controller: any interesting store event marks it dirty, and one reconcile
 * of everything runs soon after (the simulated cluster is small). Controllers write through the
 * store with their own `source`, so `api.changes` says who changed what.
 */
import type {ResourceRegistry, ResourceType} from '../resources.js'
import type {ObjectStore, StoreEvent} from '../store.js'
import type {Timers} from '../timers.js'

export interface ControllerContext {
  store: ObjectStore
  registry: ResourceRegistry
  timers: Timers
}

export abstract class Controller {
  private unsubscribe?: () => void
  private cancelScheduled?: () => void
  private paused = false
  private running = false

  constructor(
    protected readonly ctx: ControllerContext,
    /** `controller:<name>` in the change log. */
    readonly source: string,
  ) {}

  protected get store(): ObjectStore {
    return this.ctx.store
  }

  protected type(ref: string): ResourceType {
    return this.ctx.registry.resolve(ref)
  }

  protected abstract interested(e: StoreEvent): boolean

  protected abstract reconcile(): void

  /** Delay between a change and the reconcile it triggers. */
  protected reconcileDelayMs(): number {
    return 0
  }

  start(): void {
    if (this.running) return
    this.running = true
    this.unsubscribe = this.store.on((e) => {
      if (this.interested(e)) this.kick()
    })
    this.kick()
  }

  stop(): void {
    this.running = false
    this.unsubscribe?.()
    this.cancelScheduled?.()
    this.cancelScheduled = undefined
  }

  /** Stop reacting until `resume()`; nothing this controller owns changes meanwhile. */
  pause(): void {
    this.paused = true
    this.cancelScheduled?.()
    this.cancelScheduled = undefined
  }

  resume(): void {
    this.paused = false
    this.kick()
  }

  get isPaused(): boolean {
    return this.paused
  }

  /** Reconcile right now (if running and not paused): lets a helper hand back a settled object. */
  syncNow(): void {
    if (!this.running || this.paused) return
    this.cancelScheduled?.()
    this.cancelScheduled = undefined
    this.reconcile()
  }

  /** Ask for a reconcile (coalesced with any already scheduled). */
  kick(delayMs = this.reconcileDelayMs()): void {
    if (!this.running || this.paused || this.cancelScheduled) return
    this.cancelScheduled = this.ctx.timers.after(
      delayMs,
      () => {
        this.cancelScheduled = undefined
        if (this.running && !this.paused) this.reconcile()
      },
      this.source,
    )
  }

  protected is(e: StoreEvent, ...refs: string[]): boolean {
    return refs.some((r) => {
      const [resource, ...g] = r.split('.')
      return e.rt.resource === resource && e.rt.group === g.join('.')
    })
  }
}
