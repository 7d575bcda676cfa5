// The recorder page records itself with rrweb's record() and uploads the
// events in segments (a JSON array each) to the dev stack's Ingest function,
// as README.md's plain-rrweb snippet does: POST
// /v1/projects/{p}/replays/{r}/segments/{n}?key=KEY with text/plain (no CORS
// preflight), sendBeacon when the page goes away. Ingest publishes them to
// the Pub/Sub emulator, as in production.
//
// window.__recorder exposes the counters for the browser test.

const params = new URLSearchParams(location.search);
const project = params.get('project') || '1';
const replay = params.get('replay') || crypto.randomUUID();
// A segment goes out every flushMs, or once it holds maxEvents events.
const flushMs = Number(params.get('flush_ms') || 1500);
const maxEvents = Number(params.get('max_events') || 200);

const state = {
  project,
  replay,
  ready: false, // recording
  stopped: false, // stopped and every segment answered
  events: 0, // events recorded
  segmentsSent: 0,
  segmentsAcked: 0,
  eventsAcked: 0,
  failures: 0,
  error: '',
};
window.__recorder = state;

const $ = (id) => document.getElementById(id);
let buffer = [];
let nextSegment = 0;
let queue = Promise.resolve();
let stopRecording = null;
let recording = false; // emitted events belong to the recording
let timer = null;

function render() {
  $('st-replay').textContent = replay;
  $('st-events').textContent = state.events;
  $('st-sent').textContent = state.segmentsSent;
  $('st-acked').textContent = state.segmentsAcked;
  $('st-error').textContent = state.error;
}

let ingest = null; // { url, key } from /api/config

function ingestURL(segment) {
  return `${ingest.url}/v1/projects/${project}/replays/${replay}/segments/${segment}?key=${encodeURIComponent(ingest.key)}`;
}

// flush cuts a segment from the buffered events and queues its upload;
// uploads go one at a time, in segment order.
function flush() {
  if (buffer.length === 0) return queue;
  const events = buffer;
  buffer = [];
  const segment = nextSegment++;
  state.segmentsSent++;
  render();
  queue = queue.then(() => send(segment, events));
  return queue;
}

async function send(segment, events) {
  const body = JSON.stringify(events);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const res = await fetch(ingestURL(segment), {
        method: 'POST',
        headers: { 'Content-Type': 'text/plain' },
        body,
      });
      if (res.ok) {
        state.segmentsAcked++;
        state.eventsAcked += events.length;
        render();
        return;
      }
      state.error = `segment ${segment}: HTTP ${res.status} ${await res.text()}`;
    } catch (e) {
      state.error = `segment ${segment}: ${e}`;
    }
    // A resend is safe: Pack stores a segment once, whatever Pub/Sub does.
    state.failures++;
    render();
    await new Promise((r) => setTimeout(r, 300 * 2 ** attempt));
  }
}

async function stop() {
  if (!stopRecording) return;
  recording = false;
  stopRecording();
  stopRecording = null;
  clearInterval(timer);
  $('stop').disabled = true;
  $('st-state').textContent = 'uploading the last segment…';
  await flush();
  state.stopped = true;
  $('st-state').textContent = 'stopped';
  const view = $('view');
  view.href = `/viewer?${new URLSearchParams({ project, replay })}`;
  view.hidden = false;
  render();
}

// consolePlugin records console.error calls as rrweb plugin events in the
// format of rrweb's console plugin ("rrweb/console@1"), which Pack's issue
// detection reads. (rrweb's own plugin is a separate package; this page
// needs only errors.)
const consolePlugin = {
  name: 'rrweb/console@1',
  options: {},
  observer(cb) {
    const original = console.error;
    console.error = (...args) => {
      cb({ level: 'error', trace: [], payload: args.map((a) => JSON.stringify(String(a))) });
      original.apply(console, args);
    };
    return () => { console.error = original; };
  },
};

// The demo page itself.
function setUpDemo() {
  let clicks = 0;
  $('count').addEventListener('click', () => {
    clicks++;
    $('count').textContent = `Clicked ${clicks} time${clicks === 1 ? '' : 's'}`;
  });
  $('add').addEventListener('click', () => {
    const text = $('item').value.trim();
    if (!text) return;
    const li = document.createElement('li');
    li.textContent = text;
    $('items').appendChild(li);
    $('item').value = '';
  });
  $('theme').addEventListener('click', () => document.body.classList.toggle('dark'));
  // #dead has no handler on purpose (a dead click for issue detection);
  // #errors logs a burst of console errors.
  $('errors').addEventListener('click', () => {
    for (let i = 1; i <= 3; i++) console.error(`demo error ${i} of 3`);
    $('errors').textContent = 'Logged 3 errors';
  });
  $('demo').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('name').value || 'someone';
    const items = $('items').children.length;
    $('result').textContent = `Order placed for ${name}: ${$('plan').value} plan, ${$('seats').value} seat(s), ${items} item(s).`;
  });
}

async function main() {
  setUpDemo();
  render();
  let record;
  try {
    const cfg = await (await fetch('/api/config')).json();
    ingest = { url: cfg.ingest_url, key: cfg.ingest_key };
    ({ record } = await import('/vendor/rrweb/rrweb.js'));
  } catch (e) {
    state.error = `cannot load rrweb from /vendor (run npm ci in the repository root): ${e}`;
    $('st-state').textContent = 'not recording';
    render();
    return;
  }
  // record() emits the meta event and full snapshot before it returns.
  recording = true;
  stopRecording = record({
    emit(event) {
      // rrweb may still emit from a pending timer (batched mouse moves)
      // after stop: those are not part of the recording.
      if (!recording) return;
      buffer.push(event);
      state.events++;
      if (buffer.length >= maxEvents) flush();
    },
    blockClass: 'rr-block',
    plugins: [consolePlugin],
  });
  timer = setInterval(flush, flushMs);
  $('stop').disabled = false;
  $('stop').addEventListener('click', stop);
  $('st-state').textContent = 'recording';
  state.ready = true;
  render();

  // Leaving the page: hand what is buffered to the browser to send.
  addEventListener('pagehide', () => {
    if (!stopRecording || buffer.length === 0) return;
    const events = buffer;
    buffer = [];
    navigator.sendBeacon(ingestURL(nextSegment++), new Blob([JSON.stringify(events)], { type: 'text/plain' }));
  });
}

main();
