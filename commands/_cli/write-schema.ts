/**
 * Writes homelab.schema.json at build time: the JSON Schema of homelab.yaml, generated from the
 * zod schema, shipped in the package for editors and printed by `homelab config schema`.
 */
import {writeFile} from 'node:fs/promises'
import path from 'node:path'

import {configJsonSchema, formatSchema, shippedSchemaPath} from '../../src/config/schema-json.js'

const file = shippedSchemaPath(path.resolve(process.argv[2] ?? '.'))
await writeFile(file, formatSchema(configJsonSchema()))
process.stdout.write(`wrote ${path.relative(process.cwd(), file) || file}\n`)
