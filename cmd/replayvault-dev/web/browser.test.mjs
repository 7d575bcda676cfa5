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

    await seekLongReplay(t, page, info);
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

// seekLongReplay publishes a 20-minute replay (40 segments of 30 s, a full
// snapshot every 5 minutes, a text that changes every second), opens it in
// the viewer without playing, seeks to minute 12 and checks that the player
// shows that second's frame and that the viewer read only time windows:
// the first, a bounded read-ahead, and the window of the seek, from its
// snapshot, never the whole recording.
async function seekLongReplay(t, page, info) {
  const replay = crypto.randomUUID();
  const t0 = Date.now() - 3_600_000;
  const segments = 40;
  const published = [];
  for (let i = 0; i < segments; i++) {
    const base = t0 + i * 30_000;
    const events = [];
    if (i % 10 === 0) {
      events.push({ type: 4, data: { href: 'http://example.test/long', width: 800, height: 600 }, timestamp: base });
      events.push({
        type: 2,
        timestamp: base,
        data: {
          initialOffset: { left: 0, top: 0 },
          node: { type: 0, id: 1, childNodes: [{ type: 2, tagName: 'html', attributes: {}, id: 2, childNodes: [
            { type: 2, tagName: 'head', attributes: {}, id: 3, childNodes: [] },
            { type: 2, tagName: 'body', attributes: {}, id: 4, childNodes: [
              { type: 2, tagName: 'p', attributes: { id: 'at' }, id: 5, childNodes: [{ type: 3, textContent: `checkpoint ${i}`, id: 6 }] },
            ] },
          ] }] },
        },
      });
    }
    for (let k = 0; k < 30; k++) {
      events.push({ type: 3, data: { source: 0, texts: [{ id: 6, value: `segment ${i} second ${k}` }], attributes: [], removes: [], adds: [] }, timestamp: base + k * 1000 + 1 });
    }
    published.push(...events);
    const q = new URLSearchParams({ project: String(info.project), replay, segment: String(i) });
    const res = await fetch(`${info.web_url}/ingest?${q}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(events) });
    assert.equal(res.status, 200, `ingest segment ${i}: ${res.status}`);
  }
  let stored = [];
  const deadline = Date.now() + 60_000;
  while (stored.length < segments && Date.now() < deadline) {
    stored = await recordingSegments(info, replay);
    if (stored.length < segments) await sleep(200);
  }
  assert.equal(stored.length, segments, 'long replay stored');

  const reads = [];
  const responses = new Map(); // recording URL → its response
  page.on('request', (r) => { if (r.url().includes(`/replays/${replay}/recording`)) reads.push(new URL(r.url())); });
  page.on('response', (r) => { if (r.url().includes(`/replays/${replay}/recording`)) responses.set(r.url(), r); });
  const viewer = `${info.web_url}/viewer?${new URLSearchParams({ project: String(info.project), replay, token: info.token, autoplay: '0', window_ms: '60000' })}`;
  await page.goto(viewer);
  await page.waitForFunction(() => window.__replayvault?.ready, null, { timeout: 30_000 });
  await sleep(1500); // let the read-ahead run to its bound

  const target = t0 + 25 * 30_000 + 12_500; // minute 12.5: segment 25, second 12
  const before = reads.length;
  await page.evaluate((offset) => window.__replayvault.seek(offset), target - t0);
  await page.waitForFunction(() => window.__replayvault.ready, null, { timeout: 30_000 });
  const replayed = page.frameLocator('.replayer-wrapper iframe');
  await assert.doesNotReject(
    replayed.locator('#at').filter({ hasText: 'segment 25 second 12' }).waitFor({ timeout: 10_000 }),
    'the player shows the frame at the seek time',
  );
  const shot = join(out, 'seek.png');
  await page.screenshot({ path: shot, fullPage: true });
  t.diagnostic(`seek screenshot: ${shot}; recording reads: ${reads.map((u) => u.search).join(' ')}`);

  for (const u of reads) {
    assert.ok(u.searchParams.has('from_ts') && u.searchParams.has('to_ts'), `a read that is not a window: ${u.search}`);
    assert.ok(Number(u.searchParams.get('to_ts')) - Number(u.searchParams.get('from_ts')) <= 60_000, `a window over a minute: ${u.search}`);
  }
  assert.ok(reads.slice(0, before).every((u) => Number(u.searchParams.get('to_ts')) < target), 'the read-ahead stopped before the seek target');
  const seekRead = reads[before];
  assert.equal(Number(seekRead.searchParams.get('from_ts')), target, 'the seek read the window at the target');
  assert.ok(!seekRead.searchParams.has('chain'), 'the seek window comes with its snapshot chain');
  // What came over the network for the seek is that window: the events
  // from the snapshot at minute 10 (segment 20) through to_ts, nothing
  // before the snapshot and nothing after the window.
  const seekResponse = responses.get(seekRead.href);
  assert.ok(seekResponse, `no response seen for ${seekRead.search}`);
  const seekEvents = await seekResponse.json();
  const chainStart = t0 + 20 * 30_000;
  const seekTo = Number(seekRead.searchParams.get('to_ts'));
  assert.equal(seekEvents[0].timestamp, chainStart, 'the seek window starts at the snapshot before the target');
  assert.equal(seekEvents[1].type, 2, 'the seek window starts with the full snapshot');
  assert.ok(seekEvents.every((e) => e.timestamp >= chainStart && e.timestamp <= seekTo), 'the seek window holds only its own span');
  const want = published.filter((e) => e.timestamp >= chainStart && e.timestamp <= seekTo);
  assert.deepEqual(seekEvents.map((e) => [e.type, e.timestamp]), want.map((e) => [e.type, e.timestamp]), 'the seek window is exactly its events');
  assert.ok(want.length < published.length / 3, `the seek window is ${want.length} of ${published.length} events`);

  // rrweb's Replayer shows the same DOM at the target from the whole
  // recording as the viewer shows from the window.
  const windowDOM = await page.evaluate(() => document.querySelector('.replayer-wrapper iframe').contentDocument.body.outerHTML);
  const fullDOM = await page.evaluate(async ({ serve, project, replay, token, offset }) => {
    const res = await fetch(`${serve}/v1/projects/${project}/replays/${replay}/recording`, { headers: { Authorization: `Bearer ${token}` } });
    const events = await res.json();
    const { Replayer } = await import('/vendor/rrweb/rrweb.js');
    const root = document.createElement('div');
    root.style.visibility = 'hidden';
    document.body.appendChild(root);
    const replayer = new Replayer(events, { root });
    replayer.pause(offset);
    const html = replayer.iframe.contentDocument.body.outerHTML;
    replayer.destroy?.();
    root.remove();
    return html;
  }, { serve: info.serve_url, project: info.project, replay, token: info.token, offset: target - t0 });
  assert.equal(windowDOM, fullDOM, 'the window shows the same DOM as the whole recording at the seek time');
}

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
  assert.ok(process.env.REPLAYVAULT_BIN, 'set REPLAYVAULT_BIN to a replayvault-dev binary');
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
