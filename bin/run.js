#!/usr/bin/env node
import {runCli} from '../dist/commands/_cli/run-cli.js'

await runCli(import.meta.url)
