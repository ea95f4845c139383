#!/usr/bin/env -S node --import tsx --no-warnings
// Runs the TypeScript sources directly (through tsx) so a change is visible without a build.
import {runCli} from '../commands/_cli/run-cli.ts'

await runCli(import.meta.url, {development: true})
