/**
 * The shared harness of SBIF's browser tests and of the browser conformance bridge: Debian's headless Chromium
 * (/usr/bin/chromium, never a browser Playwright downloads) driven by playwright-core, with the repository served
 * to the page from the file system at https://sbif.local/ by a Playwright route: no server, no port, no network,
 * and a secure context, as a page served over HTTPS has (navigator.userAgentData, crypto.subtle...).
 *
 * Pages load the repository's own files as a browser would load them from a web server (ES modules, fetch), so the
 * library runs in the browser exactly as shipped. Every other request is aborted, so a page can never reach the
 * network. Console errors and uncaught page errors are collected: `PageSession.close()` throws if there were any,
 * which fails a test that closes its page in `t.after`.
 *
 *   import { after, test } from 'node:test';
 *   import { closeBrowser, openPage } from './browser.mjs';
 *   after(closeBrowser);
 *   test('...', async (t) => {
 *     const session = await openPage('runtimes/js/browser/bridge.html');
 *     t.after(() => session.close());
 *     ...
 *   });
 *
 * @module
 */
import { realpathSync } from 'node:fs';
import { readFile, mkdir, realpath } from 'node:fs/promises';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

/** Debian's Chromium (`make test` installs it): the only browser these tests run. */
export const CHROMIUM = '/usr/bin/chromium';
/** The origin the repository is served at: a made-up host, answered by the route, never by a network. */
export const ORIGIN = 'https://sbif.local';
/** The repository root: the files served at ORIGIN. */
export const REPOSITORY_ROOT = realpathSync(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'));
/** Where `PageSession.screenshot` writes its PNGs (out/ is the repository's ignored output folder). */
export const SCREENSHOT_DIR = join(REPOSITORY_ROOT, 'out', 'browser');
/** The path under ORIGIN where files outside the repository are served, each only once a session allows it. */
const FILE_ROUTE = '/@file';

const CONTENT_TYPES = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.sbif': 'application/octet-stream',
};

/** The origin's root: an empty page, where a test that brings no page of its own imports modules and fetches. */
const BLANK_PAGE = '<!doctype html><html lang="en"><meta charset="utf-8"><title>sbif.local</title></html>';

let sharedBrowser = null;

/**
 * The process's Chromium, launched on first use and shared by every page (a launch costs about a second and a half;
 * a page's own browser context keeps pages apart).
 * @returns {Promise<import('playwright-core').Browser>}
 */
export function launchBrowser() {
  sharedBrowser ??= chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  return sharedBrowser;
}

/** Closes the shared Chromium, if launched: its pipes keep Node's event loop alive until then. */
export async function closeBrowser() {
  const launching = sharedBrowser;
  sharedBrowser = null;
  if (launching) await (await launching).close();
}

/**
 * The URL of a repository file, as the page sees it.
 * @param {string} repositoryPath a path relative to the repository root, with forward slashes, then optionally a
 *   query or a fragment, kept as written (e.g. 'runtimes/js/browser/bridge.html?predict')
 */
export function repositoryUrl(repositoryPath) {
  const [, path, queryAndFragment] = /^([^?#]*)(.*)$/s.exec(repositoryPath);
  return `${ORIGIN}/${path.split('/').map(encodeURIComponent).join('/')}${queryAndFragment}`;
}

/**
 * The URL a page fetches an allowed file outside the repository from (see `PageSession.allowFile`).
 * @param {string} absolutePath
 */
export function fileUrl(absolutePath) {
  return `${ORIGIN}${FILE_ROUTE}?path=${encodeURIComponent(absolutePath)}`;
}

/** A page's console errors and uncaught exceptions, raised together. */
export class PageErrors extends Error {
  constructor(errors) {
    super(`the page reported ${errors.length} error(s):\n  ${errors.join('\n  ')}`);
    this.name = 'PageErrors';
    this.errors = errors;
  }
}

/** One page in its own browser context, served from the file system; see the module's documentation. */
export class PageSession {
  /** @param {import('playwright-core').BrowserContext} context @param {import('playwright-core').Page} page */
  constructor(context, page) {
    this.context = context;
    this.page = page;
    /** Console errors and uncaught page errors, in the order they happened. */
    this.errors = [];
    this.allowedFiles = new Set();
    page.on('console', (message) => {
      if (message.type() === 'error') this.errors.push(`console error: ${message.text()}`);
    });
    page.on('pageerror', (error) => this.errors.push(`uncaught ${error.stack || error}`));
  }

  /**
   * Lets the page fetch one file outside the repository at `fileUrl(absolutePath)`, read-only; no other file
   * outside the repository is served.
   * @param {string} absolutePath
   */
  allowFile(absolutePath) {
    this.allowedFiles.add(absolutePath);
  }

  /** @param {import('playwright-core').Route} route */
  async serve(route) {
    const request = route.request();
    const url = new URL(request.url());
    if (url.origin !== ORIGIN) return route.abort('blockedbyclient');
    if (request.method() !== 'GET' && request.method() !== 'HEAD') {
      return route.fulfill({ status: 405, contentType: 'text/plain', body: `${request.method()} is not served: read-only` });
    }
    if (url.pathname === '/') return route.fulfill({ status: 200, contentType: CONTENT_TYPES['.html'], body: BLANK_PAGE });
    let path;
    if (url.pathname === FILE_ROUTE) {
      path = url.searchParams.get('path') ?? '';
      if (!this.allowedFiles.has(path)) {
        return route.fulfill({ status: 403, contentType: 'text/plain', body: `${path} is not a file this page may read` });
      }
    } else {
      path = await servedRepositoryPath(decodeURIComponent(url.pathname));
      if (path === null) {
        return route.fulfill({ status: 404, contentType: 'text/plain', body: `${url.pathname} is not in the repository` });
      }
    }
    let body;
    try {
      body = await readFile(path);
    } catch (error) {
      const status = error.code === 'ENOENT' || error.code === 'ENOTDIR' ? 404 : 500;
      return route.fulfill({ status, contentType: 'text/plain', body: error.message });
    }
    const contentType = CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
    return route.fulfill({ status: 200, contentType, body });  // routing disables the HTTP cache: always fresh
  }

  /**
   * Navigates to a repository page and waits for its load event.
   * @param {string} [repositoryPath] as repositoryUrl takes it; the origin's empty root page by default
   */
  async goto(repositoryPath = '') {
    const response = await this.page.goto(repositoryUrl(repositoryPath));
    if (!response || !response.ok()) {
      throw new Error(`${repositoryPath}: ${response ? `${response.status()} ${await response.text()}` : 'no response'}`);
    }
  }

  /** Throws PageErrors if the page has reported any error so far. */
  checkErrors() {
    if (this.errors.length) throw new PageErrors(this.errors.splice(0));
  }

  /**
   * Writes a PNG of the page (the whole page unless `options` says otherwise) to SCREENSHOT_DIR/<name>.png.
   * @param {string} name
   * @param {import('playwright-core').PageScreenshotOptions} [options]
   * @returns {Promise<string>} the PNG's path
   */
  async screenshot(name, options = {}) {
    const path = join(SCREENSHOT_DIR, `${name}.png`);
    await mkdir(SCREENSHOT_DIR, { recursive: true });
    await this.page.screenshot({ fullPage: true, ...options, path });
    return path;
  }

  /** Closes the page's context, then throws PageErrors if the page reported any error. */
  async close() {
    await this.context.close();
    this.checkErrors();
  }
}

/**
 * The file a request path names inside the repository, or null if it names none there (`..` or a symbolic link
 * leading outside it included).
 * @param {string} pathname
 */
async function servedRepositoryPath(pathname) {
  const path = resolve(REPOSITORY_ROOT, `.${pathname}`);
  let real;
  try {
    real = await realpath(path);
  } catch {
    return path.startsWith(REPOSITORY_ROOT + sep) ? path : null;  // missing: readFile answers 404 with its reason
  }
  return real.startsWith(REPOSITORY_ROOT + sep) ? real : null;
}

/**
 * Opens a page of its own browser context in the shared Chromium, served from the repository, at `repositoryPath`
 * (the origin's empty root page by default).
 * @param {string} [repositoryPath] e.g. 'runtimes/js/browser/bridge.html'
 * @param {{viewport?: {width: number, height: number}}} [options]
 * @returns {Promise<PageSession>}
 */
export async function openPage(repositoryPath, { viewport = { width: 1280, height: 800 } } = {}) {
  const browser = await launchBrowser();
  const context = await browser.newContext({ viewport });
  const session = new PageSession(context, await context.newPage());
  await context.route('**/*', (route) => session.serve(route));
  await session.goto(repositoryPath);
  return session;
}
