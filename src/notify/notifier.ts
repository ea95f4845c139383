/**
 * Notifications of an upgrade's progress to webhooks (`notify:` in homelab.yaml): a generic JSON
 * body, Slack and Discord incoming webhooks, and ntfy topics. Sent in the background, each
 * bounded in time and retries; a notification that cannot be delivered is a warning and never
 * changes the run's outcome. The URLs carry tokens: they are shown masked, always.
 */
import {maskSecret} from '../config/show.js'
import type {NotifyEventName, NotifyFormat} from './events.js'

export {NOTIFY_EVENTS, NOTIFY_FORMATS, type NotifyEventName, type NotifyFormat} from './events.js'

export interface NotifyTarget {
  url: string
  format: NotifyFormat
  events: readonly NotifyEventName[]
}

export interface Notification {
  event: NotifyEventName
  runId?: string
  distribution: string
  from?: string
  to?: string
  node?: string
  /** One line for a person. */
  message: string
  at: string
}

export interface NotifierOptions {
  targets: readonly NotifyTarget[]
  /** fetch, passed in so the transport can be replaced. */
  post?: (url: string, init: RequestInit) => Promise<Response>
  /** Per attempt. */
  timeoutMs?: number
  /** Attempts after the first. */
  retries?: number
  onWarning: (message: string) => void
}

/** The webhook with its tokens replaced: scheme and host stay, so the user knows which one. */
export function maskedUrl(url: string): string {
  return String(maskSecret('notify.url', url))
}

export function notificationBody(format: NotifyFormat, n: Notification): {body: string; headers: Record<string, string>} {
  const title = `homelab ${n.event}${n.node ? ` ${n.node}` : ''}`
  switch (format) {
    case 'slack':
      return {body: JSON.stringify({text: `*${title}*: ${n.message}`}), headers: {'content-type': 'application/json'}}
    case 'discord':
      return {body: JSON.stringify({content: `**${title}**: ${n.message}`}), headers: {'content-type': 'application/json'}}
    case 'ntfy': {
      const bad = n.event === 'failed' || n.event === 'interrupted'
      // ntfy takes the message as the body and the rest as headers (HTTP headers are ASCII).
      return {
        body: n.message,
        headers: {'content-type': 'text/plain; charset=utf-8', title: title.replace(/[^\x20-\x7e]/g, '?'), tags: bad ? 'warning' : n.event === 'succeeded' ? 'white_check_mark' : 'arrows_counterclockwise', priority: bad ? 'high' : 'default'},
      }
    }
    default:
      return {body: JSON.stringify(n), headers: {'content-type': 'application/json'}}
  }
}

export class Notifier {
  private readonly pending = new Set<Promise<void>>()
  private readonly post: NonNullable<NotifierOptions['post']>

  constructor(private readonly options: NotifierOptions) {
    this.post = options.post ?? ((url, init) => fetch(url, init))
  }

  get enabled(): boolean {
    return this.options.targets.length > 0
  }

  /** Starts sending to every target that wants this event; returns at once. */
  send(notification: Notification): void {
    for (const target of this.options.targets) {
      if (!target.events.includes(notification.event)) continue
      const sending = this.deliver(target, notification).finally(() => this.pending.delete(sending))
      this.pending.add(sending)
    }
  }

  /** Waits for what is in flight, at most `maxMs`: the command must not hang on a dead webhook. */
  async flush(maxMs = 10_000): Promise<void> {
    if (this.pending.size === 0) return
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), maxMs)
    })
    const outcome = await Promise.race([Promise.allSettled([...this.pending]).then(() => 'done' as const), deadline])
    clearTimeout(timer)
    if (outcome === 'late') this.options.onWarning(`${this.pending.size} notification(s) still unsent after ${Math.round(maxMs / 1000)}s; given up`)
  }

  private async deliver(target: NotifyTarget, notification: Notification): Promise<void> {
    const {body, headers} = notificationBody(target.format, notification)
    const attempts = 1 + (this.options.retries ?? 2)
    let last = ''
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const response = await this.post(target.url, {method: 'POST', body, headers, signal: AbortSignal.timeout(this.options.timeoutMs ?? 5000), redirect: 'error'})
        await response.arrayBuffer().catch(() => undefined)
        if (response.ok) return
        last = `HTTP ${response.status}`
        // The receiver said no for a reason a retry will not change.
        if (response.status >= 400 && response.status < 500 && response.status !== 429) break
      } catch (error) {
        // Never the error's own text: it may quote the URL, token and all.
        last = (error as Error).name === 'TimeoutError' ? 'no answer in time' : `cannot connect (${codeOf(error)})`
      }
      if (attempt < attempts) await new Promise((resolve) => setTimeout(resolve, 250 * attempt))
    }
    this.options.onWarning(`notification ${notification.event} to ${maskedUrl(target.url)} was not delivered: ${last}`)
  }
}

function codeOf(error: unknown): string {
  const cause = (error as {cause?: {code?: unknown}})?.cause
  return typeof cause?.code === 'string' ? cause.code : 'network error'
}
