#!/usr/bin/env node
import module from 'node:module'

// Node ≥ 22.1 keeps compiled code between runs ($TMPDIR/node-compile-cache, off with
// NODE_DISABLE_COMPILE_CACHE=1): a command then starts faster from its second run. Node 20 has
// no such cache and skips this.
module.enableCompileCache?.()

const {runCli} = await import('../dist/commands/_cli/run-cli.js')
await runCli(import.meta.url)
