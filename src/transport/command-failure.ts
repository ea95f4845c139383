import {CommandError} from '../errors.js'
import {quoteArgv} from './quote.js'
import type {ExecResult} from './types.js'

/** A hint for a failed privileged command, when the failure is sudo's and not the command's. */
export function sudoHint(stderr: string, user: string, node: string): string | undefined {
  if (/a password is required|no tty present|a terminal is required/i.test(stderr)) {
    return `let ${user} run commands on ${node} without a password: add a NOPASSWD rule, e.g. \`${user} ALL=(ALL) NOPASSWD: ALL\` in /etc/sudoers.d/homelab (edit with visudo), or log in as root and set become: none`
  }
  if (/is not in the sudoers file|not allowed to execute/i.test(stderr)) {
    return `give ${user} sudo rights on ${node} (a NOPASSWD rule in /etc/sudoers.d/), or log in as root and set become: none`
  }
  if (/sudo: (command )?not found/i.test(stderr)) {
    return `install sudo on ${node}, or log in as root and set become: none`
  }
  return undefined
}

/**
 * The error `Transport.run` throws for a non-zero exit, the same for every transport: the node,
 * the command as a person would type it, the last lines of stderr, and what to do (sudo's own
 * failures get a specific fix).
 */
export function commandFailure(node: string, argv: readonly string[], result: ExecResult, sudoUser: string | undefined): CommandError {
  const shown = quoteArgv(argv)
  const stderr = result.stderr.trim()
  const hint = (sudoUser ? sudoHint(result.stderr, sudoUser, node) : undefined) ?? `run \`${shown}\` on ${node} by hand to see why`
  const how = result.exitCode === null ? 'was killed by a signal' : `exited ${result.exitCode}`
  return new CommandError(`${node}: \`${shown}\` ${how}${stderr ? `: ${stderr.split('\n').slice(-3).join(' | ')}` : ''}`, result.exitCode, result.stderr, {hint})
}
