/**
 * Writes oclif.manifest.json at build time (the `oclif manifest` command needs Node ≥ 22). With
 * it, oclif loads only the command being run instead of importing every command to list them,
 * which is most of the start-up time of `--help` and `--version`.
 */
import {rm, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {Config, type Interfaces} from '@oclif/core'

const root = path.resolve(process.argv[2] ?? '.')
const file = path.join(root, 'oclif.manifest.json')
// A manifest from an earlier build would be read back instead of the commands as they are now.
await rm(file, {force: true})
const config = await Config.load(root)
// Config.getPluginsList() types its entries as the narrower interface; the root plugin holds its manifest.
const plugin = config.getPluginsList().find((p) => p.isRoot) as (Interfaces.Plugin & {manifest?: Interfaces.Manifest}) | undefined
if (!plugin?.manifest) throw new Error(`no oclif plugin at ${root}`)
const {manifest} = plugin
await writeFile(file, `${JSON.stringify(manifest, null, 2)}\n`)
process.stdout.write(`wrote ${path.relative(process.cwd(), file) || file} (${Object.keys(manifest.commands).length} commands)\n`)
