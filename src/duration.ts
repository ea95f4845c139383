import {UsageError} from './errors.js'

const UNIT_MS = {ms: 1, s: 1000, m: 60_000, h: 3_600_000} as const
type Unit = keyof typeof UNIT_MS

/** What the error messages list, so every duration error teaches the same forms. */
export const DURATION_FORMS = '30s, 5m, 1h30m, 250ms, or a whole number of seconds'

// Go's time.ParseDuration grammar (the one kubectl, Velero and SUC use), minus µs/ns.
const PART_RE = /(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)/y

/**
 * Parses `30s`, `5m`, `1h30m`, `250ms`, `1.5h`, or plain seconds (`30`, or the number 30 as YAML
 * gives it) into milliseconds. `what` names the setting in the error (`--timeout`, `drain.timeout`).
 */
export function parseDuration(input: string | number, what = 'duration'): number {
  const ms = durationMs(input)
  if (ms === undefined) {
    throw new UsageError(`${what}: ${JSON.stringify(input)} is not a duration (use ${DURATION_FORMS})`, {
      hint: `set ${what} to a duration such as 5m`,
    })
  }
  return ms
}

/** Milliseconds, or undefined when `input` is not a duration. Never throws. */
export function durationMs(input: string | number): number | undefined {
  if (typeof input === 'number') {
    return Number.isSafeInteger(input) && input >= 0 ? input * 1000 : undefined
  }
  if (typeof input !== 'string') return undefined
  const text = input.trim()
  if (/^\d+$/.test(text)) return Number(text) * 1000
  if (text === '') return undefined
  let total = 0
  let at = 0
  PART_RE.lastIndex = 0
  while (at < text.length) {
    PART_RE.lastIndex = at
    const m = PART_RE.exec(text)
    if (!m) return undefined
    total += Number(m[1]) * UNIT_MS[m[2] as Unit]
    at = PART_RE.lastIndex
  }
  const ms = Math.round(total)
  return Number.isSafeInteger(ms) ? ms : undefined
}

/** Milliseconds back to the compact form people write: `1h30m`, `2m`, `1.5s`, `250ms`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms)
  if (ms < 0) return `-${formatDuration(-ms)}`
  const whole = Math.round(ms)
  if (whole < 1000) return `${whole}ms`
  const h = Math.floor(whole / UNIT_MS.h)
  const m = Math.floor((whole % UNIT_MS.h) / UNIT_MS.m)
  const s = (whole % UNIT_MS.m) / 1000
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s ? `${s}s` : ''}`
}
