// Browser test of the PII scrub edge rule: the production tool pushes the
// scrub module (shared/rules/modules/piiscrub) to the dev stack and assigns
// it to the project; Debian's Chromium, driven by playwright-core, records
// a real checkout form with rrweb while an e-mail address and a card number
// are typed into its inputs and added to the page as text. After Pack, no
// byte Serve returns holds either, in any notation, and rrweb-player plays
// the replay in Chromium with the masked text in place of the data.
//
// Run it with scripts/browser-test. Environment as browser.test.mjs, and:
//   REPLAYVAULT_CLI  the production replayvault binary (rules push/assign)
//   SCRUB_WASM       the scrub module, built with GOOS=wasip1 GOARCH=wasm

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { startDev } from './devstack.mjs';

const run = promisify(execFile);
const out = process.env.BROWSER_TEST_OUT;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const chromiumArgs = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const email = 'grace.hopper@navy.example';
const card = '4111 1111 1111 1111'; // a test card number: passes the Luhn check
const secrets = [email, card, card.replaceAll(' ', ''), 'grace.hopper', '4111111111111111'.slice(0, 12)];

// patternMask is what the module makes of an e-mail address or a card
// number found in text: every character but the separators becomes '*'.
const patternMask = (s) => s.replace(/[^ .@-]/g, '*');
// inputMask is what it makes of an input's value (mask_all_inputs): all
// but spaces.
const inputMask = (s) => s.replace(/[^ ]/g, '*');

// rules runs `replayvault rules ...` against the dev stack's database and
// bucket, as a deployer would against production's.
async function rules(info, ...args) {
  const env = {
    ...process.env,
    DATABASE_URL: info.database_url,
    BUCKET: info.bucket,
    STORAGE_EMULATOR_HOST: info.storage_emulator_host,
  };
  const { stdout } = await run(process.env.REPLAYVAULT_CLI, ['rules', ...args], { env });
  return stdout.trim();
}

async function served(info, replay, format) {
  const q = format ? `?format=${format}` : '';
  const res = await fetch(`${info.serve_url}/v1/projects/${info.project}/replays/${replay}/recording${q}`, {
    headers: { Authorization: `Bearer ${info.token}` },
  });
  return { status: res.status, body: await res.text() };
}

// segmentsStored waits until Serve returns n segments of replay.
async function segmentsStored(info, replay, n) {
  let lines = [];
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const r = await served(info, replay, 'ndjson');
    if (r.status === 200) lines = r.body.split('\n').filter((l) => l !== '');
    if (lines.length >= n) return lines;
    await sleep(200);
  }
  assert.fail(`${lines.length} of ${n} segments of ${replay} stored`);
}

// rulesInForce publishes one-segment canary replays holding an address
// until Pack stores one masked: Pack has loaded the assignment (it
// refreshes every RULES_REFRESH).
async function rulesInForce(info) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const replay = crypto.randomUUID();
    const events = [{ type: 3, data: { source: 0, texts: [{ id: 1, value: 'canary@example.test' }], attributes: [], removes: [], adds: [] }, timestamp: Date.now() }];
    const q = new URLSearchParams({ project: String(info.project), replay, segment: '0' });
    const res = await fetch(`${info.web_url}/ingest?${q}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(events) });
    assert.equal(res.status, 200, `ingest canary: ${res.status}`);
    const [line] = await segmentsStored(info, replay, 1);
    if (!line.includes('canary@')) return;
    await sleep(500);
  }
  assert.fail('Pack did not pick up the scrub rule within 60 s');
}

test('a form typed with an e-mail address and a card number is stored scrubbed and still plays with the masks visible', { timeout: 300_000 }, async (t) => {
  assert.ok(process.env.REPLAYVAULT_BIN, 'set REPLAYVAULT_BIN to a replayvault-dev binary');
  assert.ok(process.env.REPLAYVAULT_CLI, 'set REPLAYVAULT_CLI to a replayvault binary');
  assert.ok(process.env.SCRUB_WASM, 'set SCRUB_WASM to the scrub module');
  assert.ok(out, 'set BROWSER_TEST_OUT to a directory for the screenshot');

  const dev = await startDev({ env: { RULES_REFRESH: '1s' } });
  const { info } = dev;
  let browser;
  try {
    const hash = await rules(info, 'push', '-name', 'piiscrub', process.env.SCRUB_WASM);
    await rules(info, 'assign', '-project', String(info.project), '-name', 'scrub', '-module', hash, '-fail', 'closed');
    t.diagnostic(`scrub module ${hash.slice(0, 12)} assigned to project ${info.project}`);
    await rulesInForce(info);

    browser = await chromium.launch({ executablePath, headless: true, args: chromiumArgs });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const consoleErrors = [];
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));

    // Record: the address and the card number typed into inputs (input
    // events), and added to the page as list items (mutations adding text
    // nodes), where only their pattern can tell them.
    await page.goto(`${info.recorder_url}?flush_ms=1000`);
    await page.waitForFunction(() => window.__recorder?.ready, null, { timeout: 30_000 });
    await page.locator('#name').pressSequentially('Grace Hopper', { delay: 30 });
    await page.locator('#email').pressSequentially(email, { delay: 30 });
    await page.locator('#notes').pressSequentially(`Charge card ${card} please`, { delay: 15 });
    for (const item of [`Receipt to ${email}`, `Card ${card}`]) {
      await page.locator('#item').pressSequentially(item, { delay: 15 });
      await page.locator('#add').click();
    }
    await page.locator('#submit').click();
    await page.waitForFunction(() => window.__recorder.segmentsAcked >= 2, null, { timeout: 30_000 });
    await page.locator('#stop').click();
    await page.waitForFunction(() => window.__recorder.stopped, null, { timeout: 60_000 });
    const rec = await page.evaluate(() => ({ ...window.__recorder }));
    t.diagnostic(`recorded ${rec.events} events in ${rec.segmentsAcked} segments; replay ${rec.replay}`);
    assert.equal(rec.error, '', 'recorder reported an error');
    assert.equal(rec.segmentsAcked, rec.segmentsSent, 'every segment acked by ingest');

    // Every byte Serve returns, as JSON and as NDJSON.
    const lines = await segmentsStored(info, rec.replay, rec.segmentsAcked);
    const json = await served(info, rec.replay, '');
    assert.equal(json.status, 200);
    for (const body of [json.body, lines.join('\n')]) {
      for (const s of secrets) assert.ok(!body.includes(s), `Serve returned ${JSON.stringify(s)}`);
    }
    const events = JSON.parse(json.body);
    assert.equal(events.length, rec.events, 'every recorded event stored');
    assert.ok(json.body.includes(patternMask(email)), 'the masked address is stored in its place');

    // Replay it: the page plays to its end, and shows the masks where the
    // data was.
    await page.setViewportSize({ width: 1200, height: 860 });
    const viewer = `${info.web_url}/viewer?${new URLSearchParams({ project: String(info.project), replay: rec.replay, token: info.token, autoplay: '0' })}`;
    await page.goto(viewer);
    await page.waitForFunction(() => window.__replayvault?.ready, null, { timeout: 30_000 });
    const view = await page.evaluate(() => ({ events: window.__replayvault.events, error: window.__replayvault.error }));
    assert.equal(view.error, '', 'viewer reported an error');
    assert.equal(view.events, rec.events, 'the player loaded every event');
    await page.evaluate(() => window.__replayvault.seekEnd());
    const replayed = page.frameLocator('.replayer-wrapper iframe');
    await assert.doesNotReject(
      replayed.locator('#result').filter({ hasText: 'Order placed for Grace Hopper' }).waitFor({ timeout: 10_000 }),
      'the replayed page reached the submitted order',
    );
    assert.deepEqual(await replayed.locator('#items li').allTextContents(),
      [`Receipt to ${patternMask(email)}`, `Card ${patternMask(card)}`], 'the added items show their masks');
    assert.equal(await replayed.locator('#email').inputValue(), inputMask(email), 'the typed address is masked');
    assert.equal(await replayed.locator('#notes').inputValue(), inputMask(`Charge card ${card} please`), 'the typed note is masked');
    const html = await page.evaluate(() => document.querySelector('.replayer-wrapper iframe').contentDocument.documentElement.outerHTML);
    for (const s of secrets) assert.ok(!html.includes(s), `the replayed page shows ${JSON.stringify(s)}`);
    await sleep(300);
    const shot = join(out, 'scrubbed.png');
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot: ${shot}`);
    assert.deepEqual(consoleErrors, [], 'no errors in the browser console');
  } finally {
    if (browser) await browser.close();
    const result = await dev.stop();
    assert.equal(result.code, 0, `replayvault-dev dev exited with ${JSON.stringify(result)}; log ${dev.logPath}`);
  }
});
