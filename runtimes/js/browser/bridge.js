/**
 * The browser end of the conformance bridge: the library's own protocol session (src/protocol.js), answering the
 * request lines sbif-browser-protocol.js hands it. Model files are fetched from the driver's route, which serves a
 * file only once a request has named it (tests/browser/browser.mjs, `fileUrl`).
 *
 * The page exposes `globalThis.sbifBridge.answer(line)` once the session is ready. The session claims and answers
 * what bin/sbif-protocol.js does, `predict` requests included.
 */
import { answerPredict } from '../src/protocol-predict.js';
import { createProtocolSession } from '../src/protocol.js';

/** The route under which the driver serves the files requests name (tests/browser/browser.mjs). */
const FILE_ROUTE = '/@file';

/** @param {string} path an absolute path a request names */
async function readFile(path) {
  const response = await fetch(`${FILE_ROUTE}?path=${encodeURIComponent(path)}`);
  if (!response.ok) throw new Error(await response.text());
  return new Uint8Array(await response.arrayBuffer());
}

/** The browser and its version, as the hello's runtime language gives them, e.g. "Chromium 156.0.8078.114". */
async function browserName() {
  const brands = navigator.userAgentData
    ? (await navigator.userAgentData.getHighEntropyValues(['fullVersionList'])).fullVersionList : [];
  const chromium = brands.find(({ brand }) => brand === 'Chromium');
  return chromium ? `Chromium ${chromium.version}` : navigator.userAgent;
}

const session = createProtocolSession({ readFile, language: `javascript (${await browserName()})` });
session.setPredictHandler(answerPredict);

globalThis.sbifBridge = {
  /**
   * Answers one request line.
   * @param {string|Uint8Array|null} line the line as text; its bytes when they are not UTF-8 (the session refuses
   *   them as it does in Node); null for a line over the protocol's limit, which the driver read past
   * @returns {Promise<[string|null, boolean]>} the answer line (null for none) and whether the session has ended
   */
  async answer(line) {
    const answer = await session.handle(line);
    return [answer, session.closed];
  },
};
