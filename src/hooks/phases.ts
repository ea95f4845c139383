/** When hooks run: kept apart so the config schema needs nothing else. */
export const HOOK_PHASES = ['preRun', 'postRun', 'preNode', 'postNode'] as const
export type HookPhase = (typeof HOOK_PHASES)[number]
