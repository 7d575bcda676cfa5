// Real SDKs, unchanged, against the dev stack's Ingest: Debian's Chromium,
// driven by playwright-core, types and clicks on pages instrumented with
// posthog-js (pointed at Ingest by api_host only) and with @sentry/browser's
// replay integration (pointed at Ingest by the DSN only), both from npm at
// the versions package.json pins. The test reads
// the SDK's own requests as they leave the page, reads the replay back
// through Serve, checks the events are exactly the ones the SDK sent, in
// order, and plays them in the viewer, whose replayed DOM must show the
// typed text.
//
// Run it with scripts/browser-test. Environment as browser.test.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync, inflateSync } from 'node:zlib';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { startDev } from './devstack.mjs';

const out = process.env.BROWSER_TEST_OUT;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const chromiumArgs = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// posthogEvents decodes one /s/ request body as the SDK sent it (gzip or
// plain JSON) into its sessions' rrweb events, expanding the fields
// posthog-js compressed itself ("cv": "2024-10": gzip bytes in latin-1
// strings), which is what the player needs and Serve must return.
function posthogEvents(body) {
  if (body[0] === 0x1f && body[1] === 0x8b) body = gunzipSync(body);
  let batch = JSON.parse(body.toString('utf8'));
  if (!Array.isArray(batch)) batch = batch.batch || [batch];
  const unzip = (s) => JSON.parse(gunzipSync(Buffer.from(s, 'latin1')).toString('utf8'));
  const sessions = {};
  for (const ev of batch) {
    if (ev.event !== '$snapshot') continue;
    const sid = ev.properties.$session_id;
    const data = ev.properties.$snapshot_data;
    for (const e of Array.isArray(data) ? data : [data]) {
      if (e.cv === '2024-10') {
        delete e.cv;
        if (e.type === 2 && typeof e.data === 'string') e.data = unzip(e.data);
        if (e.type === 3) {
          for (const f of ['texts', 'attributes', 'removes', 'adds']) {
            if (typeof e.data[f] === 'string') e.data[f] = unzip(e.data[f]);
          }
        }
      }
      (sessions[sid] ||= []).push(e);
    }
  }
  return sessions;
}


// sentryEvents decodes one envelope as the SDK sent it into the replay id
// and {segment, events} of its replay_recording items: a header line, then
// items, each a JSON header line (type, optional length) and its payload; a
// recording is a {"segment_id":N} line, then zlib or plain JSON.
function sentryEvents(body) {
  let pos = body.indexOf(10);
  const header = JSON.parse(body.subarray(0, pos).toString('utf8'));
  pos++;
  let replayId = header.event_id || '';
  const recordings = [];
  while (pos < body.length) {
    const nl = body.indexOf(10, pos);
    const ih = JSON.parse(body.subarray(pos, nl < 0 ? body.length : nl).toString('utf8'));
    pos = nl + 1;
    let payload;
    if (typeof ih.length === 'number') {
      payload = body.subarray(pos, pos + ih.length);
      pos += ih.length + 1;
    } else {
      const end = body.indexOf(10, pos);
      payload = body.subarray(pos, end < 0 ? body.length : end);
      pos = end < 0 ? body.length : end + 1;
    }
    if (ih.type === 'replay_event') replayId = JSON.parse(payload.toString('utf8')).replay_id;
    if (ih.type === 'replay_recording') {
      const cut = payload.indexOf(10);
      const { segment_id: segment } = JSON.parse(payload.subarray(0, cut).toString('utf8'));
      let data = payload.subarray(cut + 1);
      if (data[0] === 0x78) data = inflateSync(data);
      recordings.push({ segment, events: JSON.parse(data.toString('utf8')) });
    }
  }
  return { replayId, recordings };
}

// readBack waits until Serve holds exactly the events the SDK has sent
// (sent() is read again each time: an SDK may still be sending), checks
// the metadata, and that the replayed DOM in the viewer shows the typed
// text.
async function readBack(t, info, browser, replay, sent, meta, shot) {
  let got = [];
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    const res = await fetch(`${info.serve_url}/v1/projects/${info.project}/replays/${replay}/recording`, {
      headers: { Authorization: `Bearer ${info.token}` },
    });
    if (res.status === 200) got = await res.json();
    if (JSON.stringify(got) === JSON.stringify(sent())) break;
    await sleep(200);
  }
  assert.deepEqual(got, sent(), 'Serve returns the events the SDK sent, in order');
  const m = await (await fetch(`${info.serve_url}/v1/projects/${info.project}/replays/${replay}`, {
    headers: { Authorization: `Bearer ${info.token}` },
  })).json();
  assert.equal(m.source, meta.source);
  assert.equal(m.source_id, meta.sourceID);
  assert.match(m.sdk, meta.sdk);

  const viewer = await browser.newPage({ viewport: { width: 1200, height: 860 } });
  await viewer.goto(`${info.web_url}/viewer?${new URLSearchParams({ project: String(info.project), replay, token: info.token, autoplay: '0' })}`);
  await viewer.waitForFunction(() => window.__replayvault?.ready, null, { timeout: 30_000 });
  assert.equal(await viewer.evaluate(() => window.__replayvault.error), '');
  await viewer.evaluate(() => window.__replayvault.seekEnd());
  const replayed = viewer.frameLocator('.replayer-wrapper iframe');
  await replayed.locator('#count').filter({ hasText: 'clicked 3 times' }).waitFor({ timeout: 10_000 });
  assert.equal(await replayed.locator('#name').inputValue(), 'Ada Lovelace');
  await sleep(300);
  await viewer.screenshot({ path: join(out, shot), fullPage: true });
  t.diagnostic(`screenshot: ${join(out, shot)}`);
  await viewer.close();
}

// interact types and clicks on the instrumented page.
async function interact(page) {
  await page.locator('#name').pressSequentially('Ada Lovelace', { delay: 60 });
  for (let i = 0; i < 3; i++) await page.locator('#count').click();
}

test('posthog-js records through Ingest; Serve returns exactly what it sent', { timeout: 300_000 }, async (t) => {
  assert.ok(process.env.REPLAYVAULT_BIN, 'set REPLAYVAULT_BIN to a replayvault-dev binary');
  assert.ok(out, 'set BROWSER_TEST_OUT to a directory for the screenshot');
  const dev = await startDev();
  const { info } = dev;
  let browser;
  try {
    browser = await chromium.launch({ executablePath, headless: true, args: chromiumArgs });
    const page = await browser.newPage({ viewport: { width: 1200, height: 860 } });
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`); });

    // Every snapshot batch the SDK sends, decoded as it left the page.
    const sent = {};
    let batches = 0;
    page.on('request', (r) => {
      if (r.method() !== 'POST' || !r.url().startsWith(`${info.ingest_url}/s/`)) return;
      batches++;
      for (const [sid, evs] of Object.entries(posthogEvents(r.postDataBuffer()))) (sent[sid] ||= []).push(...evs);
    });

    await page.goto(`${info.web_url}/posthog`);
    await page.waitForFunction(() => window.__posthog?.recording, null, { timeout: 30_000 });
    await interact(page);
    const session = await page.evaluate(() => window.__posthog.session);
    // posthog-js flushes its buffer every few seconds: wait until what it
    // sent holds the last click.
    const deadline = Date.now() + 60_000;
    while (!JSON.stringify(sent[session] || []).includes('clicked 3 times') && Date.now() < deadline) await sleep(200);
    const want = sent[session] || [];
    t.diagnostic(`posthog-js sent ${want.length} events of session ${session} in ${batches} batch(es)`);
    assert.ok(JSON.stringify(want).includes('clicked 3 times'), 'the SDK sent the last click');
    await page.close();
    // The session id is the replay id.
    await readBack(t, info, browser, session, () => want, { source: 'posthog', sourceID: session, sdk: /^posthog-js\// }, 'posthog-replay.png');
    assert.deepEqual(problems, [], 'no page errors or failed requests');
  } finally {
    if (browser) await browser.close();
    const result = await dev.stop();
    assert.equal(result.code, 0, `replayvault-dev dev exited with ${JSON.stringify(result)}; log ${dev.logPath}`);
  }
});

test('@sentry/browser replay records through Ingest; Serve returns exactly what it sent', { timeout: 300_000 }, async (t) => {
  assert.ok(process.env.REPLAYVAULT_BIN, 'set REPLAYVAULT_BIN to a replayvault-dev binary');
  assert.ok(out, 'set BROWSER_TEST_OUT to a directory for the screenshot');
  const dev = await startDev();
  const { info } = dev;
  let browser;
  try {
    browser = await chromium.launch({ executablePath, headless: true, args: chromiumArgs });
    const page = await browser.newPage({ viewport: { width: 1200, height: 860 } });
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`); });

    // Every envelope the SDK sends, decoded as it left the page.
    const segments = new Map(); // segment id -> events, per replay
    let envelopes = 0;
    let replayId = '';
    page.on('request', (r) => {
      if (r.method() !== 'POST' || !r.url().startsWith(`${info.ingest_url}/api/${info.project}/envelope/`)) return;
      envelopes++;
      const env = sentryEvents(r.postDataBuffer());
      for (const rec of env.recordings) {
        replayId = env.replayId;
        segments.set(rec.segment, rec.events);
      }
    });

    await page.goto(`${info.web_url}/sentry`);
    await page.waitForFunction(() => window.__sentry?.ready && window.__sentry.replay, null, { timeout: 30_000 });
    assert.equal(await page.evaluate(() => window.__sentry.error), '');
    await interact(page);
    // The replay integration flushes a few seconds after activity; ask it
    // to now, then wait until what it sent holds the last click.
    await page.evaluate(() => window.__sentryFlush());
    const sentAll = () => [...segments.keys()].sort((a, b) => a - b).flatMap((k) => segments.get(k));
    const deadline = Date.now() + 60_000;
    while (!JSON.stringify(sentAll()).includes('clicked 3 times') && Date.now() < deadline) await sleep(200);
    assert.ok(JSON.stringify(sentAll()).includes('clicked 3 times'), 'the SDK sent the last click');
    // Sentry's 32-hex replay id is the replay UUID with the same bits.
    const replay = replayId.replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
    // The page stays open while Serve is compared: the SDK may send another
    // segment meanwhile (its page keeps changing), and every request it
    // sends is seen.
    await readBack(t, info, browser, replay, sentAll, { source: 'sentry', sourceID: replayId, sdk: /^sentry\.javascript\.browser\// }, 'sentry-replay.png');
    t.diagnostic(`@sentry/browser sent ${sentAll().length} events of replay ${replayId} in ${segments.size} segment(s), ${envelopes} envelope(s)`);
    await page.close();
    assert.deepEqual(problems, [], 'no page errors or failed requests');
  } finally {
    if (browser) await browser.close();
    const result = await dev.stop();
    assert.equal(result.code, 0, `replayvault-dev dev exited with ${JSON.stringify(result)}; log ${dev.logPath}`);
  }
});
