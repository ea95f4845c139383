import type {UpgradeEvent} from '../../src/upgrade/run-upgrade.js'

/** A node's error without its own name in front (errors name the node for the final report; the line names it already). */
export function withoutNode(node: string, message: string): string {
  return message.startsWith(`${node}: `) ? message.slice(node.length + 2) : message
}

/** One line for a person, or undefined for events a person need not see. */
export function describeEvent(event: UpgradeEvent): string | undefined {
  switch (event.type) {
    case 'progress':
      return event.message
    case 'distribution':
      return `distribution ${event.source}`
    case 'target-resolved':
      return `target ${event.target}${event.channel ? ` (channel ${event.channel})` : ''}${event.hops.length > 1 ? `, through ${event.hops.join(' → ')}` : ''}`
    case 'hop-started':
      return `== ${event.target}: pre-flight checks`
    case 'plan':
      return `plan: servers ${event.plan.servers.map((n) => n.name).join(', ') || '-'}; agents ${event.plan.agents.map((n) => n.name).join(', ') || '-'}`
    case 'run-started':
      return `run ${event.runId} ${event.resumed ? 'resumed' : 'started'}${event.mode === 'rollback' ? ' (rollback)' : ''}`
    case 'step-started':
      return `> ${event.title}`
    case 'step-finished':
      return `< ${event.step}: done`
    case 'step-skipped':
      return `< ${event.step}: skipped (${event.reason})`
    case 'step-failed':
      return `! ${event.step}: ${event.error.message}`
    case 'step-interrupted':
      return `! ${event.step}: interrupted`
    case 'action-started':
      return ` > ${event.node}: starting`
    case 'action-finished':
      return ` < ${event.node}: done`
    case 'action-skipped':
      return ` < ${event.node}: skipped (${event.reason})`
    case 'action-failed':
      return ` ! ${event.node}: ${withoutNode(event.node, event.error.message)}`
    case 'action-interrupted':
      return ` ! ${event.node}: interrupted`
    case 'compensation-registered':
      return undefined
    case 'compensation-started':
      return `undo > ${event.description}`
    case 'compensation-finished':
      return `undo < ${event.id}: done`
    case 'compensation-failed':
      return `undo ! ${event.id}: ${event.error.message}`
    case 'log':
      return event.level === 'debug' ? undefined : `${event.node ? `   ${event.node}: ` : '   '}${event.level === 'info' ? '' : `${event.level}: `}${event.message}`
    case 'run-finished':
      return `run ${event.runId}: ${event.outcome}`
  }
}

/** Plain timestamped lines, for logs and terminals without a TTY. */
export function plainLineWriter(write: (line: string) => void): (event: UpgradeEvent) => void {
  return (event) => {
    const text = describeEvent(event)
    if (text) write(`${new Date().toISOString()} ${text}`)
  }
}

/** One JSON object per line, for pipelines (`--log-format json`, to stderr). */
export function ndjsonWriter(write: (line: string) => void): (event: UpgradeEvent) => void {
  return (event) => {
    const time = 'time' in event ? event.time : new Date().toISOString()
    write(JSON.stringify({...event, time}))
  }
}
