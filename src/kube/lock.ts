import type {V1Lease} from '@kubernetes/client-node'

import {V1MicroTime} from '../bundled/kubernetes-client.js'
import type {KubeClients} from './client.js'
import {apiFailure, isConflict, isNotFound} from './api-errors.js'
import {LockHeldError} from '../errors.js'

export interface ClusterLockOptions {
  kube: KubeClients
  /** Who we are: `<run id>@<host>`. The run id before `@` lets a resumed run take its own lock back. */
  holder: string
  namespace?: string
  name?: string
  leaseDurationSeconds?: number
  now?: () => number
  /** Called once when a renewal finds the lease taken or gone: the run must stop changing things. */
  onLost?: (reason: string) => void
}

export const LOCK_NAMESPACE = 'kube-system'
export const LOCK_NAME = 'homelab-upgrade'

const runIdOf = (holder: string | undefined) => holder?.split('@')[0]

/**
 * One upgrade at a time per cluster, held as a coordination.k8s.io/v1 Lease like every
 * Kubernetes controller's leader lock: holder and expiry are visible with kubectl, a crashed
 * run's lock expires on its own, and the same run resuming may take its own lock back.
 */
export class ClusterLock {
  private timer?: NodeJS.Timeout
  private lease?: V1Lease
  private readonly namespace: string
  private readonly name: string
  private readonly duration: number
  private readonly now: () => number

  constructor(private readonly options: ClusterLockOptions) {
    this.namespace = options.namespace ?? LOCK_NAMESPACE
    this.name = options.name ?? LOCK_NAME
    this.duration = options.leaseDurationSeconds ?? 60
    this.now = options.now ?? Date.now
  }

  /**
   * Read-only: throws LockHeldError when another run holds the lock now. Lets a run say so
   * before its pre-flight, which would otherwise report the other run's changes in flight
   * (nodes cordoned or restarting) as problems of the cluster.
   */
  async check(): Promise<void> {
    const existing = await this.read()
    if (existing) this.refuseIfHeld(existing)
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.options.kube.coordination.readNamespacedLease({name: this.name, namespace: this.namespace})
    } catch (error) {
      if (isNotFound(error)) return undefined
      throw error
    }
  }

  private isOurs(lease: V1Lease): boolean {
    return runIdOf(lease.spec?.holderIdentity) === runIdOf(this.options.holder)
  }

  private refuseIfHeld(lease: V1Lease): void {
    const holder = lease.spec?.holderIdentity
    const renewed = lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : 0
    const expires = renewed + (lease.spec?.leaseDurationSeconds ?? 0) * 1000
    if (holder && !this.isOurs(lease) && expires > this.now()) throw this.heldError(holder, expires)
  }

  async acquire(): Promise<void> {
    const {coordination} = this.options.kube
    const existing = await this.read()
    const stamp = new V1MicroTime(this.now())
    const spec = {holderIdentity: this.options.holder, leaseDurationSeconds: this.duration, acquireTime: stamp, renewTime: stamp}
    try {
      if (!existing) {
        this.lease = await coordination.createNamespacedLease({
          namespace: this.namespace,
          body: {apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: {name: this.name, namespace: this.namespace}, spec},
        })
      } else {
        this.refuseIfHeld(existing)
        const ours = this.isOurs(existing)
        this.lease = await coordination.replaceNamespacedLease({
          name: this.name,
          namespace: this.namespace,
          body: {...existing, spec: {...existing.spec, ...spec, leaseTransitions: (existing.spec?.leaseTransitions ?? 0) + (ours ? 0 : 1)}},
        })
      }
    } catch (error) {
      if (error instanceof LockHeldError) throw error
      if (isConflict(error)) {
        // Someone created or renewed it between our read and write: they won.
        const current = await coordination.readNamespacedLease({name: this.name, namespace: this.namespace})
        throw this.heldError(current.spec?.holderIdentity ?? 'another run', Date.now() + this.duration * 1000)
      }
      throw error
    }
    this.timer = setInterval(() => void this.renew(), (this.duration * 1000) / 3)
    this.timer.unref()
  }

  private heldError(holder: string, expires: number): LockHeldError {
    return new LockHeldError(
      `another upgrade holds the cluster lock (Lease ${this.namespace}/${this.name}, holder ${holder}, expires ${new Date(expires).toISOString()})`,
      `wait for it to finish, or if it crashed, wait until the lock expires or resume that run with --resume ${runIdOf(holder)}`,
    )
  }

  private async renew(): Promise<void> {
    if (!this.lease) return
    try {
      this.lease = await this.options.kube.coordination.replaceNamespacedLease({
        name: this.name,
        namespace: this.namespace,
        body: {...this.lease, spec: {...this.lease.spec, renewTime: new V1MicroTime(this.now())}},
      })
    } catch (error) {
      // An unreachable API (a server restarting) is not a lost lock; a conflict or deletion is.
      if (isConflict(error) || isNotFound(error)) {
        this.stopRenewing()
        this.options.onLost?.(apiFailure(error).message)
      }
    }
  }

  private stopRenewing(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  /**
   * Deletes a Lease this run left behind without holding it now: a run killed after its journal
   * said it ended, before it let the lock go. Never throws; expiry frees it anyway.
   */
  async releaseLeftover(): Promise<void> {
    try {
      const existing = await this.read()
      if (existing && this.isOurs(existing)) await this.options.kube.coordination.deleteNamespacedLease({name: this.name, namespace: this.namespace})
    } catch {
      // Expiry frees it anyway.
    }
  }

  /** Gives the lock up if it is still ours. Never throws: releasing must not hide the run's outcome. */
  async release(): Promise<void> {
    this.stopRenewing()
    if (!this.lease) return
    try {
      const current = await this.options.kube.coordination.readNamespacedLease({name: this.name, namespace: this.namespace})
      if (current.spec?.holderIdentity === this.options.holder) {
        await this.options.kube.coordination.deleteNamespacedLease({name: this.name, namespace: this.namespace})
      }
    } catch {
      // Expiry frees it anyway.
    }
    this.lease = undefined
  }
}
