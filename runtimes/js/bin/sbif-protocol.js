#!/usr/bin/env node
// The conformance protocol (spec/conformance-protocol.md) on stdin/stdout, over the library's protocol session:
//
//   sbif conformance run --runtime "node runtimes/js/bin/sbif-protocol.js" --golden conformance/golden
//
// This file only wires the session to the process: request lines from stdin, answers to stdout, model files from disk.
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';

import { MAX_LINE_BYTES, createProtocolSession } from '../src/protocol.js';
import { answerPredict } from '../src/protocol-predict.js';

// Calls `onLine` with each line of `stream` (a Buffer without its newline), or with null for a line longer than
// MAX_LINE_BYTES, which is read past without being kept; then `onEnd`.
function readLines(stream, onLine, onEnd) {
  let parts = [];
  let length = 0;
  let skipping = false;
  stream.on('data', (chunk) => {
    let start = 0;
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, newline);
      start = newline + 1;
      onLine(skipping || length + piece.length + 1 > MAX_LINE_BYTES ? null : Buffer.concat(parts.concat([piece])));
      parts = [];
      length = 0;
      skipping = false;
    }
    const rest = chunk.subarray(start);
    if (skipping || length + rest.length >= MAX_LINE_BYTES) {
      skipping = true;
      parts = [];
      length = 0;
    } else if (rest.length) {
      parts.push(rest);
      length += rest.length;
    }
  });
  stream.on('end', () => {
    if (skipping) onLine(null);
    else if (length) onLine(Buffer.concat(parts));
    onEnd();
  });
}

if (endianness() !== 'LE') {
  process.stderr.write('sbif-protocol reads tensors with typed arrays and needs a little-endian machine\n');
  process.exit(2);
}
const session = createProtocolSession({
  readFile: (path) => readFileSync(path),
  language: `javascript (node ${process.version})`,
});
session.setPredictHandler(answerPredict);
// Requests are answered one at a time, in order: each line waits for the previous answer.
let pending = Promise.resolve();
readLines(process.stdin, (line) => {
  pending = pending.then(async () => {
    const answer = await session.handle(line);
    if (answer !== null) process.stdout.write(`${answer}\n`);
    if (session.closed) process.stdin.destroy();
  });
}, () => {});
