#!/usr/bin/env node
/**
 * sbif-browser-protocol: the JavaScript runtime (runtimes/js/src) running in headless Chromium, speaking the
 * conformance protocol (spec/conformance-protocol.md) on stdin/stdout, so the conformance suite checks the library
 * where a web page runs it, not only in Node:
 *
 *   sbif conformance run --runtime "node runtimes/js/browser/sbif-browser-protocol.js" ...
 *
 * It claims and answers what bin/sbif-protocol.js does, `predict` requests included.
 *
 * This program is the transport only. It opens bridge.html (tests/browser/browser.mjs: Debian's Chromium through
 * playwright-core, the repository served from the file system), hands each request line to the page's protocol
 * session (bridge.js) and writes the page's answer line. The page reads a model file with fetch, and the route
 * serves it only the files requests name in their `model` member, read-only. The page's console errors go to
 * standard error, the harness's crash diagnostics; if the page itself dies, so does this program.
 *
 * Needs `make browser` (Chromium and tests/browser's node_modules).
 */
import { closeBrowser, openPage } from '../../../tests/browser/browser.mjs';
import { MAX_LINE_BYTES } from '../src/protocol.js';

const NEWLINE = 0x0a;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The lines of a byte stream, without their newlines, as Buffers; null for a line longer than MAX_LINE_BYTES, which
 * is read past without being kept.
 * @param {AsyncIterable<Buffer>} stream
 */
async function* lines(stream) {
  let parts = [];
  let length = 0;
  let overlong = false;
  const take = (piece, newline) => {
    if (overlong) return;
    if (length + piece.length + newline > MAX_LINE_BYTES) {
      overlong = true;
      parts = [];
      length = 0;
    } else if (piece.length) {
      parts.push(piece);
      length += piece.length;
    }
  };
  const finish = () => {
    const line = overlong ? null : Buffer.concat(parts, length);
    parts = [];
    length = 0;
    overlong = false;
    return line;
  };
  for await (const chunk of stream) {
    let start = 0;
    for (let newline = chunk.indexOf(NEWLINE); newline !== -1; newline = chunk.indexOf(NEWLINE, start)) {
      take(chunk.subarray(start, newline), 1);
      start = newline + 1;
      yield finish();
    }
    take(chunk.subarray(start), 0);
  }
  if (length || overlong) yield finish();
}

/**
 * A line as the page takes it: its text; its bytes when it is not UTF-8 (Playwright carries a Uint8Array as one,
 * and the page's session refuses it with the words it uses in Node); null for an overlong line.
 * @param {Buffer|null} line
 */
function forPage(line) {
  if (line === null) return null;
  try {
    return UTF8.decode(line);
  } catch {
    return new Uint8Array(line.buffer, line.byteOffset, line.length);
  }
}

/**
 * The model file a request line names, if it is a request naming one: the one file outside the repository the
 * page may then read. Lines that are not such requests go to the page as they are, which answers them.
 * @param {string} line
 */
function namedModel(line) {
  if (!line.includes('"model"')) return null;
  try {
    const message = JSON.parse(line);
    return typeof message?.model === 'string' ? message.model : null;
  } catch {
    return null;
  }
}

const USAGE = 'usage: sbif-browser-protocol.js (no arguments: requests on stdin, answers on stdout)';

async function main(args) {
  if (args.length) {
    process.stderr.write(`sbif-browser-protocol: unknown argument ${args[0]}\n${USAGE}\n`);
    process.exit(2);
  }
  const session = await openPage('runtimes/js/browser/bridge.html');
  await session.page.waitForFunction(() => globalThis.sbifBridge !== undefined);
  for await (const bytes of lines(process.stdin)) {
    const line = forPage(bytes);
    if (typeof line === 'string') {
      const model = namedModel(line);
      if (model !== null) session.allowFile(model);
    }
    const [answer, closed] = await session.page.evaluate((request) => globalThis.sbifBridge.answer(request), line);
    for (const error of session.errors.splice(0)) process.stderr.write(`page: ${error}\n`);
    if (answer !== null) process.stdout.write(`${answer}\n`);
    if (closed) break;
  }
  await closeBrowser();
}

main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(`sbif-browser-protocol: ${error.stack || error}\n`);
  process.exit(1);
});
