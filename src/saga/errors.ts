import {HomelabError, type HomelabErrorOptions} from '../errors.js'
import type {ErrorRecord} from './types.js'

/** The run journal could not be read or written. */
export class JournalError extends HomelabError {
  readonly file?: string

  constructor(message: string, options: HomelabErrorOptions & {file?: string} = {}) {
    super(message, options)
    this.file = options.file
  }
}

/** A saga definition is inconsistent with itself or with a journal (a bug, or a version change). */
export class SagaDefinitionError extends HomelabError {}

/** A journal cannot be resumed or rolled back in the way asked. */
export class RunStateError extends HomelabError {}

/** Several node actions of one step failed; each failure is kept. */
export class NodeActionsFailedError extends HomelabError {
  readonly failures: ReadonlyArray<{node: string; error: unknown}>

  constructor(step: string, failures: ReadonlyArray<{node: string; error: unknown}>) {
    const list = failures.map((f) => `${f.node}: ${errorMessage(f.error)}`).join('; ')
    const first = failures[0]?.error
    super(`${failures.length} nodes failed in ${step}: ${list}`, {
      cause: first,
      hint: first instanceof HomelabError ? first.hint : undefined,
      exitCode: first instanceof HomelabError ? first.exitCode : undefined,
    })
    this.failures = failures
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** The journal's view of an error: message, hint and cause chain; no stack, nothing else. */
export function toErrorRecord(error: unknown): ErrorRecord {
  if (!(error instanceof Error)) return {name: 'Error', message: String(error)}
  const record: ErrorRecord = {name: error.name, message: error.message}
  if (error instanceof HomelabError) {
    if (error.hint) record.hint = error.hint
    record.exitCode = error.exitCode
  }
  const causes: string[] = []
  let cause = error.cause
  // Bounded: cause chains can be cyclic.
  for (let i = 0; cause !== undefined && i < 5; i++) {
    causes.push(errorMessage(cause))
    cause = cause instanceof Error ? cause.cause : undefined
  }
  if (causes.length > 0) record.cause = causes.join(': ')
  return record
}
