/**
 * The flag syntaxes of `plan generate`, turned into Plan fields: label selectors as kubectl
 * writes them (`-l`), tolerations as `kubectl taint` writes taints, and the upgrade window.
 * Every error names the flag and shows a form that works.
 */
import {UsageError} from '../errors.js'
import {LABEL_KEY_RULE, LABEL_VALUE_RULE} from './names.js'
import type {LabelSelector, LabelSelectorRequirement, TaintEffect, TimeWindowSpec, Toleration, WindowDay} from './types.js'
import {WINDOW_DAYS} from './types.js'

/** Splits on commas outside parentheses: `a in (x,y),b` → [`a in (x,y)`, `b`]. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = []
  let depth = 0
  let current = ''
  for (const ch of text) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      parts.push(current)
      current = ''
    } else current += ch
  }
  parts.push(current)
  return parts.map((p) => p.trim())
}

const SELECTOR_FORMS = 'key=value, key!=value, key in (a,b), key notin (a,b), key, !key'
const SELECTOR_EXAMPLE = 'node-role.kubernetes.io/control-plane in (true),!node-role.kubernetes.io/etcd'

/**
 * kubectl's label selector syntax to a metav1.LabelSelector: equality goes to `matchLabels`,
 * everything else to `matchExpressions`, in the order written.
 */
export function parseLabelSelector(text: string, flag = '--selector'): LabelSelector {
  const bad = (part: string, why: string) =>
    new UsageError(`${flag}: ${JSON.stringify(part)} ${why}`, {hint: `write requirements separated by commas, each one of: ${SELECTOR_FORMS}; e.g. ${SELECTOR_EXAMPLE}`})
  if (text.trim() === '') throw new UsageError(`${flag} is empty`, {hint: `give at least one requirement (${SELECTOR_FORMS})`})
  const matchLabels: Record<string, string> = {}
  const matchExpressions: LabelSelectorRequirement[] = []
  const checkKey = (part: string, key: string) => {
    if (!LABEL_KEY_RULE.test(key)) throw bad(part, `has an invalid label key ${JSON.stringify(key)} (${LABEL_KEY_RULE.rule})`)
  }
  const checkValue = (part: string, value: string) => {
    if (!LABEL_VALUE_RULE.test(value)) throw bad(part, `has an invalid label value ${JSON.stringify(value)} (${LABEL_VALUE_RULE.rule})`)
  }
  for (const part of splitTopLevel(text)) {
    if (part === '') throw bad(text, 'has an empty requirement (two commas in a row?)')
    let m: RegExpExecArray | null
    if ((m = /^(\S+?)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part))) {
      const [, key, op, list] = m
      checkKey(part, key)
      const values = list.split(',').map((v) => v.trim())
      if (values.length === 0 || values.every((v) => v === '')) throw bad(part, 'lists no values')
      values.forEach((v) => checkValue(part, v))
      matchExpressions.push({key, operator: op === 'in' ? 'In' : 'NotIn', values})
    } else if ((m = /^(\S+?)\s*!=\s*(\S*)$/.exec(part))) {
      const [, key, value] = m
      checkKey(part, key)
      checkValue(part, value)
      matchExpressions.push({key, operator: 'NotIn', values: [value]})
    } else if ((m = /^(\S+?)\s*==?\s*(\S*)$/.exec(part))) {
      const [, key, value] = m
      checkKey(part, key)
      checkValue(part, value)
      if (key in matchLabels && matchLabels[key] !== value) throw bad(part, `contradicts ${key}=${matchLabels[key]}`)
      matchLabels[key] = value
    } else if ((m = /^!\s*(\S+)$/.exec(part))) {
      checkKey(part, m[1])
      matchExpressions.push({key: m[1], operator: 'DoesNotExist'})
    } else if (/^\S+$/.test(part)) {
      checkKey(part, part)
      matchExpressions.push({key: part, operator: 'Exists'})
    } else {
      throw bad(part, 'is not a label requirement')
    }
  }
  const selector: LabelSelector = {}
  if (Object.keys(matchLabels).length > 0) selector.matchLabels = matchLabels
  if (matchExpressions.length > 0) selector.matchExpressions = matchExpressions
  return selector
}

/** The selector in kubectl's syntax, for messages and tables. */
export function formatLabelSelector(selector: LabelSelector | undefined): string {
  if (!selector) return '(nothing)'
  const parts = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`)
  for (const e of selector.matchExpressions ?? []) {
    const values = (e.values ?? []).join(',')
    if (e.operator === 'In') parts.push(`${e.key} in (${values})`)
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${values})`)
    else if (e.operator === 'Exists') parts.push(e.key)
    else parts.push(`!${e.key}`)
  }
  return parts.join(',') || '(everything)'
}

const EFFECTS: readonly TaintEffect[] = ['NoSchedule', 'PreferNoSchedule', 'NoExecute']
const TOLERATION_FORMS = 'key=value:Effect, key:Effect, key, or * (everything), with Effect one of NoSchedule, PreferNoSchedule, NoExecute; e.g. node-role.kubernetes.io/control-plane:NoSchedule'

/**
 * Tolerations written like taints: `node-role.kubernetes.io/control-plane:NoSchedule`,
 * `CriticalAddonsOnly=true:NoExecute`, `dedicated` (any effect), `*` (every taint).
 * Several separated by commas.
 */
export function parseTolerations(text: string, flag = '--tolerations'): Toleration[] {
  const out: Toleration[] = []
  for (const part of text.split(',').map((p) => p.trim())) {
    const bad = (why: string) => new UsageError(`${flag}: ${JSON.stringify(part)} ${why}`, {hint: `write tolerations separated by commas, each one of: ${TOLERATION_FORMS}`})
    if (part === '') throw bad('is empty')
    const colon = part.lastIndexOf(':')
    const head = colon < 0 ? part : part.slice(0, colon)
    const effectText = colon < 0 ? undefined : part.slice(colon + 1)
    let effect: TaintEffect | undefined
    if (effectText !== undefined) {
      effect = EFFECTS.find((e) => e.toLowerCase() === effectText.toLowerCase())
      if (!effect) throw bad(`has an unknown effect ${JSON.stringify(effectText)}`)
    }
    const toleration: Toleration = {}
    if (head === '*' || head === '') {
      toleration.operator = 'Exists'
    } else {
      const eq = head.indexOf('=')
      const key = eq < 0 ? head : head.slice(0, eq)
      if (!LABEL_KEY_RULE.test(key)) throw bad(`has an invalid key ${JSON.stringify(key)} (${LABEL_KEY_RULE.rule})`)
      toleration.key = key
      if (eq < 0) toleration.operator = 'Exists'
      else {
        const value = head.slice(eq + 1)
        if (!LABEL_VALUE_RULE.test(value)) throw bad(`has an invalid value ${JSON.stringify(value)} (${LABEL_VALUE_RULE.rule})`)
        toleration.operator = 'Equal'
        toleration.value = value
      }
    }
    if (effect) toleration.effect = effect
    out.push(toleration)
  }
  return out
}

const TIME_RE = /^(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?$/
const WINDOW_FORM = 'days=mon,tue,start=19:00,end=21:00,tz=Europe/Berlin'

/**
 * `days=sat,sun,start=01:00,end=05:00,tz=Europe/Berlin`: the days run on until the next
 * `key=`. Times are 24-hour `HH:MM`; the time zone is an IANA name (default UTC, as upstream).
 */
export function parseWindow(text: string, flag = '--window'): TimeWindowSpec {
  const bad = (why: string) => new UsageError(`${flag}: ${why}`, {hint: `write it as ${WINDOW_FORM}`})
  const fields: Record<'days' | 'start' | 'end' | 'tz', string[]> = {days: [], start: [], end: [], tz: []}
  const aliases: Record<string, keyof typeof fields> = {days: 'days', day: 'days', start: 'start', starttime: 'start', end: 'end', endtime: 'end', tz: 'tz', timezone: 'tz'}
  let current: keyof typeof fields | undefined
  for (const token of text.split(',').map((t) => t.trim())) {
    if (token === '') throw bad(`${JSON.stringify(text)} has an empty part`)
    const eq = token.indexOf('=')
    if (eq >= 0) {
      const key = aliases[token.slice(0, eq).toLowerCase()]
      if (!key) throw bad(`unknown key ${JSON.stringify(token.slice(0, eq))} (use days, start, end, tz)`)
      if (fields[key].length > 0) throw bad(`${key} is given twice`)
      current = key
      fields[key].push(token.slice(eq + 1))
    } else if (current === 'days') {
      fields.days.push(token)
    } else {
      throw bad(`${JSON.stringify(token)} is not key=value`)
    }
  }
  const days = fields.days.map((d) => d.toLowerCase())
  if (days.length === 0) throw bad('no days given')
  const unknownDay = days.find((d) => !(WINDOW_DAYS as readonly string[]).includes(d))
  if (unknownDay !== undefined) throw bad(`${JSON.stringify(unknownDay)} is not a day (use mon, tue, … or 0–6 with 0 = Sunday)`)
  const [start] = fields.start
  const [end] = fields.end
  if (start === undefined || end === undefined) throw bad('both start and end are required')
  for (const [name, value] of [['start', start], ['end', end]] as const) {
    if (!TIME_RE.test(value)) throw bad(`${name} ${JSON.stringify(value)} is not a 24-hour time such as 19:00`)
  }
  const window: TimeWindowSpec = {days: [...new Set(days)] as WindowDay[], startTime: start, endTime: end}
  const [tz] = fields.tz
  if (tz !== undefined) {
    try {
      new Intl.DateTimeFormat('en', {timeZone: tz})
    } catch {
      throw bad(`${JSON.stringify(tz)} is not a time zone (use an IANA name such as Europe/Berlin or UTC)`)
    }
    window.timeZone = tz
  }
  return window
}
