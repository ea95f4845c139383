/**
 * Run journals: one JSON file per run in `$XDG_STATE_HOME/homelab/runs/<id>.json`.
 *
 * Every write replaces the file atomically (temp file in the same directory, fsync, rename), so a
 * crash or SIGKILL at any moment leaves either the previous or the next version, never a torn
 * one. That is what lets `--resume` and `rollback` trust the file in a new process.
 *
 * Never write secrets here: see the contract on `RunJournal`.
 */
import {randomBytes} from 'node:crypto'
import {link, mkdir, open, readdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {z} from '../bundled/zod.js'
import {ExitCode} from '../errors.js'
import {JournalError} from './errors.js'
import type {RunJournal, RunStatus} from './types.js'

export const JOURNAL_SCHEMA_VERSION = 1

export interface JournalStoreOptions {
  /** The runs directory; default from `env` (XDG_STATE_HOME) and `homedir`. */
  dir?: string
  env?: Record<string, string | undefined>
  homedir?: string
  now?: () => Date
  /** Run id generator, given the creation time; default `newRunId`. */
  newId?: (createdAt: Date) => string
  /** Who writes; default this process and host. */
  writer?: {pid: number; hostname: string}
}

export interface RunFilter {
  /** One saga's name, or any of several. */
  saga?: string | readonly string[]
  status?: readonly RunStatus[]
}

export interface NewRun {
  saga: string
  input: unknown
  data?: Record<string, unknown>
}

/** `$XDG_STATE_HOME/homelab/runs`, with the XDG default `~/.local/state`. */
export function defaultRunsDir(env: Record<string, string | undefined> = process.env, homedir = os.homedir()): string {
  // The XDG spec says relative values are invalid and must be ignored.
  const state = env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME)
    ? env.XDG_STATE_HOME
    : path.join(homedir, '.local', 'state')
  return path.join(state, 'homelab', 'runs')
}

/** `20250514-103012-3f9a1c`: sorts by creation time (UTC, to the second), then random. */
export function newRunId(now: Date, random: string = randomBytes(3).toString('hex')): string {
  const iso = now.toISOString() // 2025-05-14T10:30:12.345Z
  return `${iso.slice(0, 10).replaceAll('-', '')}-${iso.slice(11, 19).replaceAll(':', '')}-${random}`
}

const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

export class JournalStore {
  readonly dir: string
  private readonly now: () => Date
  private readonly newId: (createdAt: Date) => string
  private readonly writer: {pid: number; hostname: string}

  constructor(options: JournalStoreOptions = {}) {
    this.dir = options.dir ?? defaultRunsDir(options.env ?? process.env, options.homedir ?? os.homedir())
    this.now = options.now ?? (() => new Date())
    this.newId = options.newId ?? ((createdAt) => newRunId(createdAt))
    this.writer = options.writer ?? {pid: process.pid, hostname: os.hostname()}
  }

  /**
   * Makes sure runs can be recorded here: the directory exists and takes a file. Asked before a
   * run changes anything, so an unwritable state dir refuses the run instead of failing it late.
   */
  async ensureDir(): Promise<void> {
    const fail = (error: unknown) => {
      throw new JournalError(`cannot write run journals to ${this.dir}`, {
        cause: error,
        file: this.dir,
        exitCode: ExitCode.usage,
        hint: 'check that the directory is writable, or set XDG_STATE_HOME to one that is',
      })
    }
    await mkdir(this.dir, {recursive: true, mode: 0o700}).catch(fail)
    const probe = path.join(this.dir, `.probe-${process.pid}-${Date.now()}`)
    await writeFile(probe, '', {mode: 0o600}).catch(fail)
    await rm(probe, {force: true})
  }

  /** Creates and writes a new run with no steps yet (the engine adds them). */
  async create(run: NewRun): Promise<Journal> {
    const created = this.now()
    const id = this.newId(created)
    checkId(id)
    const time = created.toISOString()
    const state: RunJournal = {
      schemaVersion: JOURNAL_SCHEMA_VERSION,
      id,
      saga: run.saga,
      status: 'running',
      createdAt: time,
      updatedAt: time,
      writer: this.writer,
      input: run.input,
      data: run.data ?? {},
      steps: [],
      compensations: [],
    }
    await this.ensureDir()
    const journal = new Journal(this.fileOf(id), state, this.now, this.writer, {exclusive: true})
    await journal.flush()
    return journal
  }

  async load(id: string): Promise<Journal> {
    checkId(id)
    const file = this.fileOf(id)
    const state = await readJournal(file)
    return new Journal(file, state, this.now, this.writer)
  }

  /** The newest run matching the filter, or undefined. */
  async loadLatest(filter: RunFilter = {}): Promise<Journal | undefined> {
    const {runs} = await this.list(filter)
    const newest = runs[0]
    return newest ? new Journal(this.fileOf(newest.id), newest, this.now, this.writer) : undefined
  }

  /** Runs newest first; files that cannot be read are reported, not hidden. */
  async list(filter: RunFilter = {}): Promise<{runs: RunJournal[]; unreadable: Array<{id: string; error: JournalError}>}> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return {runs: [], unreadable: []}
      throw new JournalError(`cannot read the runs directory ${this.dir}`, {cause: error, file: this.dir})
    }
    const runs: RunJournal[] = []
    const unreadable: Array<{id: string; error: JournalError}> = []
    for (const name of names) {
      // Temp files start with a dot; anything else that is not <id>.json is not ours.
      if (!name.endsWith('.json') || name.startsWith('.')) continue
      const id = name.slice(0, -'.json'.length)
      try {
        const run = await readJournal(path.join(this.dir, name))
        if (filter.saga !== undefined && !(typeof filter.saga === 'string' ? [filter.saga] : filter.saga).includes(run.saga)) continue
        if (filter.status !== undefined && !filter.status.includes(run.status)) continue
        runs.push(run)
      } catch (error) {
        // A run deleted between readdir and read is simply gone.
        if (error instanceof JournalError && isErrno(error.cause, 'ENOENT')) continue
        unreadable.push({id, error: error as JournalError})
      }
    }
    runs.sort((a, b) => (a.createdAt === b.createdAt ? compare(b.id, a.id) : compare(b.createdAt, a.createdAt)))
    return {runs, unreadable}
  }

  private fileOf(id: string): string {
    return path.join(this.dir, `${id}.json`)
  }
}

/**
 * One run's journal, held in memory and written through on every `update`.
 *
 * Updates are applied to the in-memory state at once, in call order, and writes are queued, so
 * concurrent node actions never lose each other's changes; each `update` resolves once a write
 * that includes its change is on disk.
 */
export class Journal {
  readonly file: string
  private readonly current: RunJournal
  private readonly clock: () => Date
  private readonly writer: {pid: number; hostname: string}
  private exclusive: boolean
  private writing: Promise<void> = Promise.resolve()
  private queued: Promise<void> | undefined
  /** `input` as JSON, made once: see the constructor. */
  private readonly inputJson: string | undefined

  constructor(
    file: string,
    state: RunJournal,
    clock: () => Date,
    writer: {pid: number; hostname: string},
    options: {exclusive?: boolean} = {},
  ) {
    this.file = file
    this.current = state
    this.clock = clock
    this.writer = writer
    this.exclusive = options.exclusive ?? false
    // The input (the plan: at 200 nodes about half the file) never changes once the run exists,
    // while the file is written again on every update (~800 times at 200 nodes): it is turned
    // into JSON once, and frozen, so a change to it would throw instead of going unrecorded.
    this.inputJson = JSON.stringify(deepFreeze(state.input))
  }

  get id(): string {
    return this.current.id
  }

  /** The live state. Read it; change it only through `update`. */
  get state(): Readonly<RunJournal> {
    return this.current
  }

  /** A deep copy of the state, safe to keep. */
  snapshot(): RunJournal {
    return structuredClone(this.current)
  }

  now(): Date {
    return this.clock()
  }

  /** Applies `mutate` now (synchronously) and writes the journal. */
  update(mutate: (journal: RunJournal) => void): Promise<void> {
    mutate(this.current)
    return this.flush()
  }

  /** Writes the current state (or waits for a queued write that will include it). */
  flush(): Promise<void> {
    // A write that has not started yet will pick up every change made before it starts.
    if (this.queued) return this.queued
    const queued = this.writing
      .catch(() => {})
      .then(() => {
        this.queued = undefined
        return this.writeNow()
      })
    this.queued = queued
    this.writing = queued
    return queued
  }

  private async writeNow(): Promise<void> {
    this.current.updatedAt = this.clock().toISOString()
    this.current.writer = this.writer
    // Compact: the whole file is written again on every update (hundreds at 200 nodes), and
    // indentation made it a third bigger; \`jq . <file>\` shows it indented.
    const {input: _input, ...rest} = this.current
    const head = JSON.stringify(rest)
    const text = this.inputJson === undefined ? `${head}\n` : `${head.slice(0, -1)},"input":${this.inputJson}}\n`
    try {
      if (this.exclusive) {
        // The first write of a new run must not overwrite another run with the same id.
        await writeFileAtomic(this.file, text, {noClobber: true})
        this.exclusive = false
      } else {
        await writeFileAtomic(this.file, text)
      }
    } catch (error) {
      throw new JournalError(`cannot write the run journal ${this.file}`, {
        cause: error,
        file: this.file,
        hint: 'check free space and permissions of the state directory; the run cannot be resumed without it',
      })
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}

/** Writes through a temp file in the same directory so readers see the old or the new file. */
export async function writeFileAtomic(file: string, text: string, options: {noClobber?: boolean} = {}): Promise<void> {
  const dir = path.dirname(file)
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  let handle: Awaited<ReturnType<typeof open>> | undefined
  try {
    handle = await open(temp, 'wx', 0o600)
    await handle.writeFile(text)
    await handle.sync()
    await handle.close()
    handle = undefined
    if (options.noClobber) {
      // link() fails atomically if the name is taken, and never shows a half-written file.
      await link(temp, file)
      await rm(temp, {force: true})
    } else {
      await rename(temp, file)
    }
  } catch (error) {
    await handle?.close().catch(() => {})
    await rm(temp, {force: true}).catch(() => {})
    throw error
  }
  await syncDirectory(dir)
}

async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch {
    // Some platforms (Windows) and filesystems cannot fsync a directory. The rename is atomic
    // regardless; only its durability across a power cut is weaker there.
  }
}

const errorRecord = z.object({
  name: z.string(),
  message: z.string(),
  hint: z.string().optional(),
  exitCode: z.number().optional(),
  cause: z.string().optional(),
})
const stepState = z.enum([
  'pending', 'running', 'done', 'failed', 'skipped', 'interrupted', 'compensating', 'compensated', 'compensation-failed',
])
const journalSchema = z.object({
  schemaVersion: z.literal(JOURNAL_SCHEMA_VERSION),
  id: z.string(),
  saga: z.string(),
  status: z.enum(['running', 'succeeded', 'failed', 'compensated', 'compensation-incomplete', 'interrupted']),
  createdAt: z.string(),
  updatedAt: z.string(),
  writer: z.object({pid: z.number(), hostname: z.string()}),
  input: z.unknown(),
  data: z.record(z.string(), z.unknown()),
  onFailure: z.enum(['compensate', 'stop']).optional(),
  steps: z.array(z.object({
    name: z.string(),
    title: z.string(),
    state: stepState,
    attempts: z.number(),
    startedAt: z.string().optional(),
    finishedAt: z.string().optional(),
    reason: z.string().optional(),
    error: errorRecord.optional(),
    actions: z.record(z.string(), z.object({
      node: z.string(),
      state: stepState,
      startedAt: z.string().optional(),
      finishedAt: z.string().optional(),
      reason: z.string().optional(),
      error: errorRecord.optional(),
    })),
  })),
  compensations: z.array(z.object({
    id: z.string(),
    handler: z.string(),
    params: z.unknown(),
    description: z.string(),
    step: z.string(),
    node: z.string().optional(),
    always: z.boolean(),
    manual: z.array(z.string()).optional(),
    state: z.enum(['pending', 'compensating', 'compensated', 'compensation-failed']),
    registeredAt: z.string(),
    startedAt: z.string().optional(),
    finishedAt: z.string().optional(),
    attempts: z.number(),
    error: errorRecord.optional(),
  })),
  rollbackStartedAt: z.string().optional(),
  error: errorRecord.optional(),
})

async function readJournal(file: string): Promise<RunJournal> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new JournalError(
      isErrno(error, 'ENOENT') ? `no run journal at ${file}` : `cannot read the run journal ${file}`,
      // A run id that names no journal is the user's typo, not a failure of the run.
      {cause: error, file, hint: `check the run id; run journals are in ${path.dirname(file)}`, ...(isErrno(error, 'ENOENT') ? {exitCode: ExitCode.usage} : {})},
    )
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw new JournalError(`the run journal ${file} is not valid JSON`, {
      cause: error,
      file,
      hint: 'the file was edited or damaged; move it aside and inspect it by hand',
    })
  }
  const version = (json as {schemaVersion?: unknown} | null)?.schemaVersion
  if (typeof version === 'number' && version > JOURNAL_SCHEMA_VERSION) {
    throw new JournalError(`the run journal ${file} was written by a newer homelab (schema ${version})`, {
      file,
      hint: 'use the homelab version that started the run to resume or roll it back',
    })
  }
  const parsed = journalSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new JournalError(
      `the run journal ${file} is not valid: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'unknown shape'}`,
      {file, hint: 'the file was edited or damaged; move it aside and inspect it by hand'},
    )
  }
  return parsed.data as RunJournal
}

function checkId(id: string): void {
  // Ids become file names: no separators, no dot-dot.
  if (!RUN_ID.test(id)) {
    throw new JournalError(`not a run id: ${JSON.stringify(id)}`, {hint: 'a run id looks like 20250514-103012-3f9a1c', exitCode: ExitCode.usage})
  }
}

function isErrno(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as {code?: unknown}).code === code
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * Whether the process that last wrote the journal is still alive: true/false on this host,
 * undefined when it ran elsewhere (cannot tell). A 'running' journal whose writer is dead was
 * killed mid-run and can be resumed or rolled back.
 */
export function writerIsAlive(journal: Pick<RunJournal, 'writer'>, hostname = os.hostname()): boolean | undefined {
  if (journal.writer.hostname !== hostname) return undefined
  try {
    process.kill(journal.writer.pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return isErrno(error, 'EPERM')
  }
}
