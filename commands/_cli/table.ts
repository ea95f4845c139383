/** Plain aligned columns: enough for a status table, readable in a terminal and in a CI log. */
export interface Column<Row> {
  header: string
  get: (row: Row) => string
}

export function renderTable<Row>(rows: readonly Row[], columns: readonly Column<Row>[]): string {
  const cells = rows.map((row) => columns.map((column) => column.get(row)))
  const widths = columns.map((column, i) => Math.max(column.header.length, ...cells.map((line) => line[i].length)))
  const format = (line: string[]) =>
    line
      .map((cell, i) => (i === line.length - 1 ? cell : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd()
  return [format(columns.map((column) => column.header)), ...cells.map(format)].join('\n')
}
