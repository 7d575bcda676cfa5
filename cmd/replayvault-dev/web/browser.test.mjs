// Browser test of the whole system: Debian's Chromium, driven by
// playwright-core, records a real interaction on the recorder page; the
// segments go through the dev stack's Ingest function, the Pub/Sub
// emulator's push delivery, Pack, fake GCS and PostgreSQL; the viewer page
// fetches them back from Serve and plays them with rrweb-player.
//
// Run it with scripts/browser-test, which builds the binary and installs
// what is missing. Environment:
//   REPLAYVAULT_BIN    replayvault-dev binary (required)
//   BROWSER_TEST_OUT   directory for the screenshot and logs (required)
//   CHROMIUM           browser executable (default /usr/bin/chromium)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { startDev } from './devstack.mjs';

const out = process.env.BROWSER_TEST_OUT;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

// Flags Chromium needs on a machine without outside network, as root.
const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// recordingSegments asks Serve for the replay as NDJSON: one segment's
// event array per line.
async function recordingSegments(info, replay) {
  const res = await fetch(`${info.serve_url}/v1/projects/${info.project}/replays/${replay}/recording?format=ndjson`, {
    headers: { Authorization: `Bearer ${info.token}` },
  });
  const body = await res.text();
  if (res.status === 404) return [];
  assert.equal(res.status, 200, `Serve answered ${res.status}: ${body}`);
  return body.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
}

test('a recorded interaction flows through Pub/Sub, Pack and Serve into the player', { timeout: 300_000 }, async (t) => {
  assert.ok(process.env.REPLAYVAULT_BIN, 'set REPLAYVAULT_BIN to a replayvault-dev binary');
  assert.ok(out, 'set BROWSER_TEST_OUT to a directory for the screenshot');

  const started = Date.now();
  const dev = await startDev();
  const { info } = dev;
  t.diagnostic(`dev stack ready in ${info.start_seconds.toFixed(1)} s (${((Date.now() - started) / 1000).toFixed(1)} s with process start); web ${info.web_url}`);

  let browser;
  try {
    browser = await chromium.launch({ executablePath, headless: true, args: chromiumArgs });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const consoleErrors = [];
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('response', (r) => { if (r.status() >= 400) consoleErrors.push(`HTTP ${r.status()} ${r.url()}`); });

    // Record: type into the form, pick, tick and click, slowly enough that
    // several segments go out while the user is still busy.
    await page.goto(`${info.recorder_url}?flush_ms=1000`);
    await page.waitForFunction(() => window.__recorder?.ready, null, { timeout: 30_000 });
    await page.locator('#name').pressSequentially('Ada Lovelace', { delay: 40 });
    await page.locator('#email').pressSequentially('ada@example.test', { delay: 40 });
    await page.locator('#plan').selectOption('Team');
    await page.locator('#seats').fill('3');
    await page.locator('#notes').pressSequentially('Please invoice the analytical engine team.', { delay: 20 });
    for (const item of ['Punched cards', 'Brass gears']) {
      await page.locator('#item').pressSequentially(item, { delay: 30 });
      await page.locator('#add').click();
    }
    await page.locator('#terms').check();
    for (let i = 0; i < 3; i++) await page.locator('#count').click();
    await page.locator('#submit').click();
    await page.waitForFunction(() => window.__recorder.segmentsAcked >= 2, null, { timeout: 30_000 });

    await page.locator('#stop').click();
    await page.waitForFunction(() => window.__recorder.stopped, null, { timeout: 60_000 });
    const rec = await page.evaluate(() => ({ ...window.__recorder }));
    t.diagnostic(`recorded ${rec.events} events; ${rec.segmentsAcked}/${rec.segmentsSent} segments acked by ingest, ${rec.failures} retries; replay ${rec.replay}`);
    assert.equal(rec.error, '', 'recorder reported an error');
    assert.equal(rec.segmentsAcked, rec.segmentsSent, 'every segment acked by ingest');
    assert.equal(rec.eventsAcked, rec.events, 'every recorded event sent');
    assert.ok(rec.segmentsAcked >= 3, `want at least 3 segments, got ${rec.segmentsAcked}`);

    // Pub/Sub delivers on its own schedule: wait until Pack has stored every
    // segment, i.e. Serve returns them all.
    let segments = [];
    const deadline = Date.now() + 60_000;
    while (segments.length < rec.segmentsAcked && Date.now() < deadline) {
      segments = await recordingSegments(info, rec.replay);
      if (segments.length < rec.segmentsAcked) await sleep(200);
    }
    assert.equal(segments.length, rec.segmentsAcked, 'segments stored and served');
    assert.equal(segments.flat().length, rec.events, 'events served');

    // Replay it in the viewer.
    await page.setViewportSize({ width: 1200, height: 860 });
    const viewer = `${info.web_url}/viewer?${new URLSearchParams({ project: String(info.project), replay: rec.replay, token: info.token, autoplay: '0' })}`;
    await page.goto(viewer);
    await page.waitForFunction(() => window.__replayvault?.ready, null, { timeout: 30_000 });
    const view = await page.evaluate(() => ({ events: window.__replayvault.events, error: window.__replayvault.error, status: window.__replayvault.status }));
    assert.equal(view.error, '', 'viewer reported an error');
    assert.equal(view.status, 200);
    assert.equal(view.events, rec.events, 'the player loaded every recorded event');

    // Show the last frame: the filled-in form.
    await page.evaluate(() => window.__replayvault.seekEnd());
    const replayed = page.frameLocator('.replayer-wrapper iframe');
    await assert.doesNotReject(
      replayed.locator('#result').filter({ hasText: 'Order placed for Ada Lovelace' }).waitFor({ timeout: 10_000 }),
      'the replayed page shows the submitted order',
    );
    assert.equal(await replayed.locator('#name').inputValue(), 'Ada Lovelace');
    assert.equal(await replayed.locator('#items li').count(), 2);
    await sleep(300); // let the player paint the frame
    const shot = join(out, 'replay.png');
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot: ${shot}`);
    console.log(`screenshot of the replayed page: ${shot}`);
    assert.deepEqual(consoleErrors, [], 'no errors in the browser console');
  } finally {
    if (browser) await browser.close();
    const stopping = Date.now();
    const result = await dev.stop();
    t.diagnostic(`replayvault-dev dev stopped in ${((Date.now() - stopping) / 1000).toFixed(1)} s`);
    assert.equal(result.code, 0, `replayvault-dev dev exited with ${JSON.stringify(result)}; log ${dev.logPath}`);
    assert.ok(!existsSync(info.data_dir), `state dir ${info.data_dir} removed on exit`);
  }
  t.diagnostic(`browser test took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
