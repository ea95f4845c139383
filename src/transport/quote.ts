/**
 * POSIX shell quoting. Remote commands travel as one string that the login shell on the node
 * parses, so every argv element is wrapped in single quotes: inside them the shell interprets
 * nothing at all, and the only character that needs care is the single quote itself, which is
 * written as `'\''` (close, escaped quote, reopen).
 */

/** Characters that never need quoting, so common commands stay readable in logs and hints. */
const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/

/** Quote one argument so a POSIX shell reads it back as exactly this string. */
export function quoteArg(arg: string): string {
  if (arg.includes('\0')) {
    // A NUL cannot be passed in an argv at all; refusing is better than silently truncating.
    throw new TypeError('a command argument cannot contain a NUL byte')
  }
  if (arg !== '' && SAFE.test(arg)) return arg
  return `'${arg.replaceAll("'", `'\\''`)}'`
}

/** Quote an argv into one command line for `sh -c`. */
export function quoteArgv(argv: readonly string[]): string {
  if (argv.length === 0) throw new TypeError('cannot quote an empty command')
  return argv.map(quoteArg).join(' ')
}

/**
 * A small script from argv-shaped parts, for the few places that need shell control flow
 * (`a && b`, redirections). Strings in `raw` are operators the caller wrote; everything else
 * is quoted, so untrusted values only ever enter as quoted words.
 */
export type ScriptPart = readonly string[] | {raw: string}

export function shellScript(parts: readonly ScriptPart[]): string {
  return parts.map((part) => ('raw' in part ? part.raw : quoteArgv(part as readonly string[]))).join(' ')
}

/** Convenience for `shellScript`: an operator or redirection written by the caller. */
export function raw(text: string): {raw: string} {
  return {raw: text}
}
