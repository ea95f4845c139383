import {fileURLToPath} from 'node:url'

import {Config, Errors, flush, handle, run, settings} from '@oclif/core'

import {closestKeys} from '../../src/config/suggest.js'
import {ExitCode, UsageError} from '../../src/errors.js'

/**
 * The CLI's entry (bin/run.js, bin/dev.js): oclif's `execute`, except that a command line naming
 * no command (`homelab k8s upgarde`, or an argument a command does not take) is a usage error like
 * any other: one line with the fix, exit 2. Every other error goes to oclif's handler as before.
 */
export async function runCli(root: string, options: {development?: boolean} = {}): Promise<void> {
  const dir = root.startsWith('file:') ? fileURLToPath(root) : root
  if (options.development) {
    process.env.NODE_ENV = 'development'
    settings.debug = true
  }
  const argv = process.argv.slice(2)
  try {
    await run(argv, dir)
    await flush()
  } catch (error) {
    const usage = error instanceof Errors.CLIError ? await unknownCommand(error, dir) : undefined
    if (!usage) return handle(error as Error)
    if (argv.includes('--json')) {
      process.stdout.write(`${JSON.stringify({error: {type: usage.name, message: usage.message, hint: usage.hint, exitCode: usage.exitCode}}, null, 2)}\n`)
    } else {
      process.stderr.write(`homelab: ${usage.oneLine()}\n`)
    }
    process.exitCode = ExitCode.usage
  }
}

/** oclif's "command k8s:upgarde not found", said as what the user typed and what they may mean. */
async function unknownCommand(error: Error, dir: string): Promise<UsageError | undefined> {
  const match = /^command (\S+) not found$/.exec(error.message)
  if (!match) return undefined
  const config = await Config.load(dir)
  const words = match[1].split(':')
  const spaced = (ids: readonly string[]) => ids.join(' ')
  // The longest run of words that is a command: the rest are arguments it does not take.
  for (let n = words.length - 1; n > 0; n--) {
    const id = words.slice(0, n).join(':')
    if (config.findCommand(id)) {
      const shown = words.slice(n).map((arg) => JSON.stringify(arg)).join(' ')
      return new UsageError(`${spaced(words.slice(0, n))} takes no arguments, got ${shown}`, {
        cause: error,
        hint: `see ${config.bin} ${spaced(words.slice(0, n))} --help`,
      })
    }
  }
  // Else the longest run that is a topic: the next word names no command in it.
  let topic = words.length - 1
  while (topic > 0 && !config.findTopic(words.slice(0, topic).join(':'))) topic--
  const prefix = words.slice(0, topic).join(':')
  const siblings = config.commandIDs.filter((id) => (prefix ? id.startsWith(`${prefix}:`) : true)).map((id) => id.split(':').slice(topic)[0])
  const subtopics = config.topics.filter((t) => (prefix ? t.name.startsWith(`${prefix}:`) : true)).map((t) => t.name.split(':').slice(topic)[0])
  const known = [...new Set([...siblings, ...subtopics])].filter(Boolean)
  const typed = words[topic]
  const close = closestKeys(typed, known).map((word) => spaced([...words.slice(0, topic), word]))
  const typedText = spaced(words.slice(0, topic + 1))
  return new UsageError(`${JSON.stringify(typedText)} is not a ${config.bin} command${close.length > 0 ? `; did you mean ${close.map((c) => JSON.stringify(c)).join(' or ')}?` : ''}`, {
    cause: error,
    hint: `see ${config.bin} ${spaced(words.slice(0, topic))}${topic > 0 ? ' ' : ''}--help for the commands`,
  })
}
