// The play page (web/play) in Chromium: the shipped PPO2 model balances CartPole for the full 500 steps from seed 0,
// and the TD3 agent swings the pendulum up; each page's first episode has exactly the return the same code gives in
// Node (tests/web/record_episodes.mjs), so the browser runs the library and the environments as Node does.
//
//   node --test tests/browser/play.test.mjs
//   UPDATE_DOCS_IMAGES=1 node --test tests/browser/play.test.mjs    # also rewrites docs/images/cartpole.png
import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { recordEpisodes } from '../web/record_episodes.mjs';
import { REPOSITORY_ROOT, closeBrowser, openPage } from './browser.mjs';

after(closeBrowser);

const inNode = recordEpisodes(1);
/** A full-speed episode takes well under a second here; the margin is for a loaded machine. */
const EPISODE_TIMEOUT_MS = 60000;

/**
 * The play page with a query, opened in a new session.
 * @param {string} query e.g. 'env=CartPole-v1&speed=max'
 */
function openPlayPage(query, options) {
  return openPage(`web/play/index.html?${query}`, options);
}

/**
 * Opens the page on `env` at full speed from seed 0, waits for its first episode to finish and pauses the page there.
 * @returns {Promise<{session: import('./browser.mjs').PageSession, episode: {return: number, steps: number},
 *   status: string}>}
 */
async function firstEpisode(t, env) {
  const session = await openPlayPage(`env=${env}&seed=0&speed=max`, { viewport: { width: 800, height: 860 } });
  t.after(() => session.close());
  const { page } = session;
  const finished = page.locator('#history li').first();
  await finished.waitFor({ timeout: EPISODE_TIMEOUT_MS });
  await page.click('#pause'); // before the next episode starts, so the picture is the finished one
  const episode = {
    return: Number(await finished.getAttribute('data-return')),
    steps: Number(await finished.getAttribute('data-steps')),
  };
  return { session, episode, status: await page.locator('#status').textContent() };
}

test('CartPole-v1 in the page: the PPO2 agent reaches return 500 from seed 0, as in Node', async (t) => {
  const { session, episode, status } = await firstEpisode(t, 'CartPole-v1');
  assert.deepEqual(episode, { return: 500, steps: 500 });
  assert.equal(inNode['CartPole-v1'].episodes[0].return, 500);
  assert.equal(status, 'episode 1 finished: return 500');
  assert.equal(await session.page.locator('#return').textContent(), '500');
  const picture = await session.screenshot('play-cartpole');
  if (process.env.UPDATE_DOCS_IMAGES === '1') {
    await mkdir(join(REPOSITORY_ROOT, 'docs', 'images'), { recursive: true });
    await copyFile(picture, join(REPOSITORY_ROOT, 'docs', 'images', 'cartpole.png'));
  }
});

test('Pendulum-v0 in the page: the TD3 agent swings up, with the return Node computes', async (t) => {
  const { session, episode } = await firstEpisode(t, 'Pendulum-v0');
  assert.deepEqual(episode, { return: inNode['Pendulum-v0'].episodes[0].return, steps: 200 });
  assert.ok(episode.return > -400, `return ${episode.return}`);
  await session.screenshot('play-pendulum');
});

test('the page refuses an unknown environment in its query with a clear message', async (t) => {
  const session = await openPlayPage('env=Acrobot-v1');
  const status = await session.page.locator('#status').textContent();
  assert.match(status, /\?env=Acrobot-v1: not one of CartPole-v1, Pendulum-v0/);
  assert.equal(await session.page.evaluate(() => document.body.dataset.status), 'error');
  session.errors.length = 0; // the page reports the refusal on the console too, as it should
  await session.close();
  t.diagnostic('refused');
});

test('at real time the page steps CartPole about 50 times a second, and Pause stops it', async (t) => {
  const session = await openPlayPage('env=CartPole-v1&seed=0&speed=1');
  t.after(() => session.close());
  const { page } = session;
  await page.waitForFunction(() => document.body.dataset.status === 'running');
  const stepCount = async () => Number(await page.locator('#step').textContent());
  await page.waitForTimeout(1000);
  const afterOneSecond = await stepCount();
  assert.ok(afterOneSecond >= 20 && afterOneSecond <= 80, `${afterOneSecond} steps in about a second`);
  await page.click('#pause');
  assert.equal(await page.evaluate(() => document.body.dataset.status), 'paused');
  const paused = await stepCount();
  await page.waitForTimeout(300);
  assert.equal(await stepCount(), paused, 'no step while paused');
});
