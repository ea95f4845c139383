/**
 * `hooks:` in homelab.yaml: commands run on the machine running homelab before and after the
 * run and each node. An argv list is run as it is; only `{shell: "…"}` goes through `sh -c`, so a
 * node name in the environment never becomes shell syntax. Each command is bounded in time.
 */
import {ExitCode, HomelabError} from '../errors.js'

import {HOOK_PHASES, type HookPhase} from './phases.js'

export {HOOK_PHASES, type HookPhase} from './phases.js'

export interface HookCommand {
  argv?: string[]
  shell?: string
  timeoutMs: number
}

export type Hooks = Record<HookPhase, HookCommand[]>

export const DEFAULT_HOOK_TIMEOUT_MS = 2 * 60_000

/** What homelab.yaml holds (after the schema): an argv list, `{argv, timeout}` or `{shell, timeout}`. */
export type HookSetting = string[] | {argv: string[]; timeout?: number} | {shell: string; timeout?: number}

export function normalizeHooks(settings: Partial<Record<HookPhase, readonly HookSetting[]>> | undefined): Hooks {
  const out = {preRun: [], postRun: [], preNode: [], postNode: []} as Hooks
  for (const phase of HOOK_PHASES) {
    for (const setting of settings?.[phase] ?? []) {
      if (Array.isArray(setting)) out[phase].push({argv: [...setting], timeoutMs: DEFAULT_HOOK_TIMEOUT_MS})
      else if ('shell' in setting) out[phase].push({shell: setting.shell, timeoutMs: setting.timeout ?? DEFAULT_HOOK_TIMEOUT_MS})
      else out[phase].push({argv: [...setting.argv], timeoutMs: setting.timeout ?? DEFAULT_HOOK_TIMEOUT_MS})
    }
  }
  return out
}

export function hasHooks(hooks: Hooks | undefined): boolean {
  return hooks !== undefined && HOOK_PHASES.some((phase) => hooks[phase].length > 0)
}

/** The command as the plan and the journal show it. */
export function describeHook(command: HookCommand): string {
  if (command.shell !== undefined) return `sh -c ${JSON.stringify(command.shell)}`
  return (command.argv ?? []).map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(' ')
}

export interface HookContext {
  runId: string
  phase: HookPhase
  node?: string
  role?: string
  from?: string
  to?: string
  outcome?: string
}

export class HookError extends HomelabError {}

/**
 * Runs the phase's commands one after another; the first that fails (non-zero, killed, timed
 * out) stops the rest. A preRun failure is a refusal (exit 3): nothing was changed yet.
 */
export async function runHooks(commands: readonly HookCommand[], context: HookContext, options: {signal?: AbortSignal; log?: (message: string) => void} = {}): Promise<void> {
  if (commands.length === 0) return
  const {execa} = await import('execa')
  const env: Record<string, string> = {HOMELAB_RUN_ID: context.runId, HOMELAB_PHASE: context.phase}
  if (context.node) env.HOMELAB_NODE = context.node
  if (context.role) env.HOMELAB_ROLE = context.role
  if (context.from) env.HOMELAB_FROM = context.from
  if (context.to) env.HOMELAB_TO = context.to
  if (context.outcome) env.HOMELAB_OUTCOME = context.outcome
  for (const command of commands) {
    const [file, ...args] = command.shell !== undefined ? ['sh', '-c', command.shell] : (command.argv ?? [])
    const shown = describeHook(command)
    options.log?.(`${context.phase} hook: ${shown}`)
    const result = await execa(file as string, args, {env, timeout: command.timeoutMs, reject: false, stdin: 'ignore', all: true, cancelSignal: options.signal, forceKillAfterDelay: 2000})
    if (result.exitCode === 0 && !result.timedOut && !result.isCanceled) continue
    const why = result.timedOut ? `did not finish within ${Math.round(command.timeoutMs / 1000)}s` : result.isCanceled ? 'was cancelled' : result.exitCode === undefined ? `could not run (${result.code ?? result.signal ?? 'error'})` : `exited with ${result.exitCode}`
    const tail = String(result.all ?? '').trim().split('\n').slice(-3).join(' | ').slice(-300)
    throw new HookError(`${context.phase} hook ${shown}${context.node ? ` for ${context.node}` : ''} ${why}${tail ? `: ${tail}` : ''}`, {
      exitCode: context.phase === 'preRun' ? ExitCode.preflightRefused : undefined,
      hint: `fix the hook in homelab.yaml (hooks.${context.phase}) or the condition it checks, then run again`,
    })
  }
}
