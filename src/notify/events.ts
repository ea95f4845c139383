/** What `notify:` in homelab.yaml can ask for: kept apart so the config schema needs nothing else. */
export const NOTIFY_EVENTS = ['started', 'node-done', 'succeeded', 'failed', 'compensated', 'interrupted'] as const
export type NotifyEventName = (typeof NOTIFY_EVENTS)[number]
export const NOTIFY_FORMATS = ['json', 'slack', 'discord', 'ntfy'] as const
export type NotifyFormat = (typeof NOTIFY_FORMATS)[number]
