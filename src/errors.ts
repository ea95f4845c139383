/**
 * Typed errors. Every error the user can see says what went wrong and what to do next
 * (`hint`), and carries the exit code the CLI must end with, so commands never guess.
 */

/** Exit codes: documented in `--help` and the README; each means one thing. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  preflightRefused: 3,
  compensated: 4,
  compensationIncomplete: 5,
  locked: 6,
  interrupted: 130,
} as const
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

export interface HomelabErrorOptions {
  hint?: string
  cause?: unknown
  exitCode?: ExitCode
}

export class HomelabError extends Error {
  readonly hint?: string
  readonly exitCode: ExitCode

  constructor(message: string, options: HomelabErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.name = new.target.name
    this.hint = options.hint
    this.exitCode = options.exitCode ?? ExitCode.failure
  }

  /** The one line a person reads: the problem, then the fix. */
  oneLine(): string {
    if (!this.hint) return this.message
    // A message listing several problems keeps the fix apart, so it is not read as the last problem's.
    // Several fixes (one per problem) each get their own `fix:` line.
    return this.message.includes('\n') ? `${this.message}\n  fix: ${this.hint.split('\n').join('\n  fix: ')}` : `${this.message} (fix: ${this.hint})`
  }
}

/** Bad flags or arguments. */
export class UsageError extends HomelabError {
  constructor(message: string, options: Omit<HomelabErrorOptions, 'exitCode'> = {}) {
    super(message, {...options, exitCode: ExitCode.usage})
  }
}

/** The cluster file is missing or invalid; names the file and the path inside it. */
export class ConfigError extends HomelabError {
  readonly file?: string
  readonly path?: string

  constructor(message: string, options: Omit<HomelabErrorOptions, 'exitCode'> & {file?: string; path?: string} = {}) {
    super(message, {...options, exitCode: ExitCode.usage})
    this.file = options.file
    this.path = options.path
  }
}

/** A version string that is not a k3s/rke2 version, or an upgrade the skew rules forbid. */
export class VersionError extends HomelabError {
  constructor(message: string, options: HomelabErrorOptions = {}) {
    super(message, {exitCode: ExitCode.usage, ...options})
  }
}

/** A read-only check refused the run before anything changed. */
export class PreflightError extends HomelabError {
  constructor(message: string, options: Omit<HomelabErrorOptions, 'exitCode'> = {}) {
    super(message, {...options, exitCode: ExitCode.preflightRefused})
  }
}

/** A host key that is unknown or differs from known_hosts. Nothing was sent to the host. */
export class HostKeyError extends HomelabError {
  readonly host: string
  readonly fingerprint: string
  readonly kind: 'unknown' | 'changed'

  constructor(host: string, fingerprint: string, kind: 'unknown' | 'changed', hint: string) {
    super(
      kind === 'unknown'
        ? `host key for ${host} is not in known_hosts (${fingerprint})`
        : `host key for ${host} has CHANGED (now ${fingerprint}); refusing to connect`,
      {hint, exitCode: ExitCode.preflightRefused},
    )
    this.host = host
    this.fingerprint = fingerprint
    this.kind = kind
  }
}

/** A node could not be reached or authenticated. */
export class ConnectionError extends HomelabError {}

/** A bounded wait ran out. */
export class TimeoutError extends HomelabError {}

/** A remote or local command exited non-zero. */
export class CommandError extends HomelabError {
  readonly exitStatus: number | null
  readonly stderr: string

  constructor(message: string, exitStatus: number | null, stderr: string, options: HomelabErrorOptions = {}) {
    super(message, options)
    this.exitStatus = exitStatus
    this.stderr = stderr
  }
}

/** The operation was cancelled through its AbortSignal (Ctrl-C). */
export class AbortedError extends HomelabError {
  constructor(message = 'cancelled', options: Omit<HomelabErrorOptions, 'exitCode'> = {}) {
    super(message, {...options, exitCode: ExitCode.interrupted})
  }
}

/** Another run holds the cluster lock. */
export class LockHeldError extends HomelabError {
  constructor(message: string, hint: string) {
    super(message, {hint, exitCode: ExitCode.locked})
  }
}

export function isHomelabError(error: unknown): error is HomelabError {
  return error instanceof HomelabError
}
