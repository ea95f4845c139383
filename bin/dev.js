#!/usr/bin/env -S node --import tsx --no-warnings
// Runs the TypeScript sources directly (through tsx) so a change is visible without a build.
import {execute} from '@oclif/core'

await execute({development: true, dir: import.meta.url})
