// Browser test of the whole system: Debian's Chromium, driven by
// playwright-core, records a real interaction on the recorder page; the
// segments go through the dev stack's ingest endpoint, the Pub/Sub
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
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const bin = process.env.REPLAYVAULT_BIN;
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

// startDev runs `replayvault-dev dev` on a free port and waits for its info
// file. stop() interrupts it as Ctrl-C would and resolves to its exit code.
async function startDev() {
  const infoPath = join(out, 'dev-info.json');
  const logPath = join(out, 'dev.log');
  rmSync(infoPath, { force: true }); // a previous run's
  const log = openSync(logPath, 'w');
  const child = spawn(bin, ['dev', '--port', '0', '--info-file', infoPath], {
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  let exited = null;
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = { code, signal };
    resolve(exited);
  }));
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);

  const deadline = Date.now() + 180_000;
  while (!existsSync(infoPath)) {
    if (exited) throw new Error(`replayvault-dev dev exited (${JSON.stringify(exited)}) before it was ready; log ${logPath}:\n${readFileSync(logPath, 'utf8')}`);
    if (Date.now() > deadline) throw new Error(`replayvault-dev dev not ready after 180 s; log ${logPath}`);
    await sleep(200);
  }
  const info = JSON.parse(readFileSync(infoPath, 'utf8'));
  return {
    info,
    logPath,
    async stop() {
      if (!exited) child.kill('SIGINT');
      // An unref'd timer: it must not keep the test process alive.
      const result = await Promise.race([exit, sleep(60_000, null, { ref: false })]);
      process.off('exit', killOnExit);
      if (!result) {
        child.kill('SIGKILL');
        throw new Error('replayvault-dev dev did not stop within 60 s of SIGINT');
      }
      return result;
    },
  };
}

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
  assert.ok(bin, 'set REPLAYVAULT_BIN to a replayvault-dev binary');
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

// issuesOf lists the project's top-level issues from Serve.
async function issuesOf(info) {
  const res = await fetch(`${info.serve_url}/v1/projects/${info.project}/issues`, {
    headers: { Authorization: `Bearer ${info.token}` },
  });
  const body = await res.text();
  assert.equal(res.status, 200, `Serve answered ${res.status}: ${body}`);
  return JSON.parse(body).issues;
}

test('a dead button clicked five times and a burst of console errors become issues, one group across two replays', { timeout: 300_000 }, async (t) => {
  assert.ok(bin, 'set REPLAYVAULT_BIN to a replayvault-dev binary');
  assert.ok(out, 'set BROWSER_TEST_OUT to a directory for the screenshot');
  const dev = await startDev();
  const { info } = dev;
  let browser;
  try {
    browser = await chromium.launch({ executablePath, headless: true, args: chromiumArgs });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const replays = [];
    const clickTimes = [];
    // The same interaction in two recordings. One segment each (a long
    // flush interval), so the snapshot names the button by its selector.
    for (let run = 0; run < 2; run++) {
      await page.goto(`${info.recorder_url}?flush_ms=60000&max_events=100000`);
      await page.waitForFunction(() => window.__recorder?.ready, null, { timeout: 30_000 });
      const before = await page.evaluate(() => Date.now());
      for (let i = 0; i < 5; i++) await page.locator('#dead').click({ delay: 20 });
      clickTimes.push([before, await page.evaluate(() => Date.now())]);
      await sleep(1500); // past the dead-click window, with nothing changing
      await page.locator('#errors').click();
      await page.mouse.move(10, 10);
      await sleep(300);
      await page.mouse.move(200, 200);
      await page.locator('#stop').click();
      await page.waitForFunction(() => window.__recorder.stopped, null, { timeout: 60_000 });
      const rec = await page.evaluate(() => ({ ...window.__recorder }));
      assert.equal(rec.error, '', 'recorder reported an error');
      replays.push(rec.replay);
    }

    // Pack stores asynchronously: wait for both replays' issues.
    let issues = [];
    const want = ['console_errors', 'dead_click', 'rage_click'];
    const deadline = Date.now() + 90_000;
    const complete = (list) => want.every((k) => list.some((i) => i.kind === k && i.replay_count === 2));
    while (!complete(issues) && Date.now() < deadline) {
      issues = await issuesOf(info);
      if (!complete(issues)) await sleep(300);
    }
    t.diagnostic(`issues: ${JSON.stringify(issues.map((i) => [i.id, i.kind, i.times_seen, i.replay_count]))}`);
    for (const kind of want) {
      const found = issues.filter((i) => i.kind === kind);
      assert.equal(found.length, 1, `one ${kind} issue for both replays`);
      assert.equal(found[0].replay_count, 2, `${kind} seen in both replays`);
      assert.deepEqual([...found[0].recent_replays].sort(), [...replays].sort());
    }
    const dead = issues.find((i) => i.kind === 'dead_click');
    assert.equal(dead.times_seen, 10, 'five dead clicks in each replay');
    assert.match(dead.title, /button#dead/);

    // One issue's occurrences carry their replay and the click's time.
    const res = await fetch(`${info.serve_url}/v1/projects/${info.project}/issues/${dead.id}`, {
      headers: { Authorization: `Bearer ${info.token}` },
    });
    const detail = await res.json();
    assert.equal(detail.occurrences.length, 10);
    for (const o of detail.occurrences) {
      const run = replays.indexOf(o.replay_id);
      assert.ok(run >= 0, `occurrence in a recorded replay: ${o.replay_id}`);
      const [from, to] = clickTimes[run];
      assert.ok(o.timestamp_ms >= from && o.timestamp_ms <= to, `click time ${o.timestamp_ms} within [${from}, ${to}]`);
    }

    // The viewer puts them on the timeline; a marker seeks the player there.
    const viewer = `${info.web_url}/viewer?${new URLSearchParams({ project: String(info.project), replay: replays[0], token: info.token, autoplay: '0' })}`;
    await page.goto(viewer);
    await page.waitForFunction(() => window.__replayvault?.ready, null, { timeout: 30_000 });
    const shown = await page.evaluate(() => window.__replayvault.issues.map((o) => o.kind));
    assert.equal(shown.filter((k) => k === 'dead_click').length, 5);
    assert.ok(shown.includes('rage_click') && shown.includes('console_errors'), `timeline: ${shown}`);
    await page.locator('.timeline .marker.rage_click').click();
    const seeked = await page.evaluate(() => window.__replayvault.seekedTo);
    assert.ok(seeked > 0, `seeked to ${seeked} ms`);
    await page.screenshot({ path: join(out, 'issues.png'), fullPage: true });
  } finally {
    if (browser) await browser.close();
    const result = await dev.stop();
    assert.equal(result.code, 0, `replayvault-dev dev exited with ${JSON.stringify(result)}; log ${dev.logPath}`);
  }
});
