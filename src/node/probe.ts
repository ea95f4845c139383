/**
 * One round trip per node: a probe is a fixed POSIX sh program that runs many small read-only
 * commands on the node and sends back each one's stdout, exit status and stderr, framed by a
 * random marker, so that the TypeScript side judges every answer exactly as if the command had
 * run on its own (same parsers, same error messages). The program's text is built here from
 * constants; every value (paths, names, versions) reaches it as a positional argument, quoted
 * by the transport (quote.ts), so no value from homelab.yaml or the API is read as shell syntax.
 *
 * Inside a probe program:
 *   `sec <name> <command…>`  runs the command in a subshell, frames its output; returns its status
 *   `priv <command…>`        the command as root: `sudo -n -- <command…>` when become is sudo
 *   `snip "$SNIPPET" <args…>` a snippet run as `sh -c "$SNIPPET" homelab <args…>` would run it, but
 *                            in the step's own subshell: no new sh process (the probe of 200 nodes
 *                            starts thousands fewer); so a snippet run this way must not `exit`
 *   `$M`, `$B`               the marker and the become mode (the first two arguments)
 *
 * The output is, per step, exactly:
 *   <M> out <name>\n<stdout>\n<M> exit <name> <status>\n<M> err <name>\n<stderr>\n<M> end <name>\n
 * A step may itself run a probe program with the same marker (the reads done as root, under one
 * sudo): the frames in its stdout are that program's steps, read as if they were the outer ones.
 */
import {randomBytes} from 'node:crypto'

import {CommandError} from '../errors.js'
import {commandFailure} from '../transport/command-failure.js'
import {quoteArg} from '../transport/quote.js'
import type {ExecResult, Transport} from '../transport/types.js'
import {privilegeError} from './node-ops.js'

export type Become = 'sudo' | 'none'

const PRELUDE = `M=$1 B=$2; shift 2
NL='
'
exec 3>&1
priv() { if [ "$B" = sudo ]; then sudo -n -- "$@"; else "$@"; fi; }
snip() { __p=$1; shift; eval "$__p"; }
sec() {
  n=$1; shift
  printf '%s out %s\\n' "$M" "$n"
  e=$( { "$@" 2>&1 1>&3 3>&-; s=$?; printf '\\n%s exit %s %s\\n' "$M" "$n" "$s" >&3; printf '\\n%s' "$s"; } )
  x=\${e##*"$NL"}; e=\${e%"$NL"*}
  printf '%s err %s\\n%s\\n%s end %s\\n' "$M" "$n" "$e" "$M" "$n"
  return "$x"
}
`

/** A probe program: shell variables holding fixed snippets (quoted here), then the body. */
export function probeProgram(snippets: Readonly<Record<string, string>>, body: string): string {
  const vars = Object.entries(snippets).map(([name, text]) => {
    if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new TypeError(`probe snippet name ${name} is not a shell variable name`)
    // An exit (or an EXIT trap) would end the step's subshell before its status is framed.
    if (body.includes(`snip "$${name}"`) && /\b(exit|trap)\b/.test(text)) throw new TypeError(`probe snippet ${name} exits; run it with sh -c, not snip`)
    return `${name}=${quoteArg(text)}`
  })
  return `${PRELUDE}${vars.join('\n')}\n${body}`
}

/** What one probe sent back: each step's result, by name. */
export class ProbeResult {
  constructor(
    readonly node: string,
    private readonly steps: ReadonlyMap<string, ExecResult>,
    private readonly sudoUser: string | undefined,
  ) {}

  /**
   * The step run with `priv` first (become: sudo), `sudo -n -- true` or the reads done as root:
   * its failure is pre-flight's refusal naming sudo's own words.
   */
  checkPrivilege(become: Become, step = 'sudo', argv: readonly string[] = ['true']): void {
    if (become !== 'sudo' || this.result(step).exitCode === 0) return
    try {
      this.stdout(step, argv, {privileged: true})
    } catch (error) {
      throw privilegeError(this.node, error as CommandError)
    }
  }

  has(name: string): boolean {
    return this.steps.has(name)
  }

  /** A step's result; a step the program did not reach is an error naming the probe's output. */
  result(name: string): ExecResult {
    const found = this.steps.get(name)
    if (!found) throw new CommandError(`${this.node}: the pre-flight probe sent no answer for ${name}`, null, '', {hint: 'run homelab again; if it persists, the node\'s shell is not POSIX sh compatible'})
    return found
  }

  /**
   * The step's stdout, or the error `Transport.run` would have thrown for `argv` (the command the
   * step ran), so every message names the command as a person would type it.
   */
  stdout(name: string, argv: readonly string[], options: {privileged?: boolean} = {}): string {
    const result = this.result(name)
    if (result.exitCode === 0) return result.stdout
    throw commandFailure(this.node, argv, result, options.privileged ? this.sudoUser : undefined)
  }
}

/** Parses a probe's framed output; steps are in the order they ran. */
export function parseProbeOutput(stdout: string, marker: string): Map<string, ExecResult> {
  const steps = new Map<string, ExecResult>()
  const frame = new RegExp(`${marker} out ([\\w-]+)\\n([\\s\\S]*?)\\n${marker} exit \\1 (\\d+)\\n${marker} err \\1\\n([\\s\\S]*?)\\n${marker} end \\1\\n`, 'g')
  for (const match of stdout.matchAll(frame)) {
    const result = {stdout: match[2] as string, exitCode: Number(match[3]), stderr: match[4] as string}
    steps.set(match[1] as string, result)
    if (result.stdout.includes(`${marker} out `)) for (const [name, inner] of parseProbeOutput(result.stdout, marker)) steps.set(name, inner)
  }
  return steps
}

/**
 * Runs a probe program on the node in one exec (as the login user; steps that need root use
 * `priv`). A probe that could not run at all (no sh, killed) is a CommandError with its stderr.
 */
export async function runProbe(
  transport: Transport,
  program: string,
  args: readonly string[],
  options: {become: Become; sudoUser?: string; signal?: AbortSignal; timeoutMs: number},
): Promise<ProbeResult> {
  const marker = `homelab-probe-${randomBytes(8).toString('hex')}`
  const argv = ['sh', '-c', program, 'homelab', marker, options.become, ...args]
  const result = await transport.exec(argv, {signal: options.signal, timeoutMs: options.timeoutMs})
  const steps = parseProbeOutput(result.stdout, marker)
  if (steps.size === 0) {
    const how = result.exitCode === null ? 'was killed by a signal' : `exited ${result.exitCode}`
    throw new CommandError(`${transport.node}: the pre-flight probe (sh -c …) ${how} without an answer${result.stderr.trim() ? `: ${result.stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`, result.exitCode, result.stderr, {
      hint: `check that ${transport.node} has a POSIX sh at /bin/sh and that the login works`,
    })
  }
  return new ProbeResult(transport.node, steps, options.sudoUser)
}
