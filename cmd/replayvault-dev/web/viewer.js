// The viewer fetches a replay's recording from Serve with a bearer token,
// as the product's frontend would, and plays it with rrweb-player.
//
//   /viewer?project=1&replay=UUID[&token=JWT][&autoplay=0][&window_ms=60000]
//
// It reads the recording in time windows: the first window (from the
// first snapshot) starts playing at once while the following ones load in
// the background (?chain=0: no snapshot again), and seeking beyond what is
// loaded, on the page's own timeline, loads the window for that time (from
// its nearest snapshot) and plays from there.
//   /viewer?project=1&issue=P1-3     an issue and the replays it was seen in
//
// A replay shows the issues found in it (Serve's replay issues API) as
// markers on a timeline under the player; clicking one seeks there (loading
// that time's window). t=MS (ms since the epoch) seeks to that moment once
// loaded.
//
// Without a token it asks the dev stack for one; without a replay it lists
// the project's replays through Serve's list endpoint. window.__replayvault
// tells the browser test what loaded: {ready, events, status, error,
// reads}, plus seek(offsetMs) and seekEnd().

const state = { ready: false, events: 0, status: 0, error: '' };
window.__replayvault = state;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

function fail(message) {
  state.error = message;
  state.ready = true;
  $('error').textContent = message;
  $('st-state').textContent = 'failed';
}

async function getJSON(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

async function listReplays(cfg, project, token) {
  // Listed by Serve, as the product's frontend would: newest first, with
  // the filters of the form on the page.
  const q = new URLSearchParams({ limit: '50' });
  for (const f of ['min_segments', 'min_duration_ms']) if (params.get(f)) q.set(f, params.get(f));
  if (params.get('cursor')) q.set('cursor', params.get('cursor'));
  const res = await fetch(`${cfg.serve_url}/v1/projects/${encodeURIComponent(project)}/replays?${q}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (!res.ok) throw new Error(`Serve list: HTTP ${res.status} ${await res.text()}`);
  const { replays, next_cursor: next } = await res.json();
  const table = $('replays');
  table.innerHTML = '<tr><th>replay</th><th>segments</th><th>started</th><th>duration</th><th></th></tr>';
  for (const r of replays) {
    const tr = document.createElement('tr');
    const link = `<a href="/viewer?${new URLSearchParams({ project, replay: r.replay_id, token })}">view</a>`;
    const dur = r.ended_at_ms - r.started_at_ms;
    tr.innerHTML = `<td class="mono">${r.replay_id}</td><td>${r.segment_count}</td><td>${new Date(r.started_at_ms).toLocaleString()}</td><td>${(dur / 1000).toFixed(0)} s</td><td>${link}</td>`;
    table.appendChild(tr);
  }
  if (replays.length === 0) table.innerHTML = '<tr><td class="muted">No replays: record one with the <a href="/recorder">recorder</a>.</td></tr>';
  if (next) {
    const more = new URLSearchParams(params);
    more.set('cursor', next);
    $('more').href = `/viewer?${more}`;
    $('more').hidden = false;
  }
  $('list').hidden = false;
  $('st-state').textContent = `${replays.length} replays`;
  state.ready = true;
}

async function main() {
  const cfg = await getJSON('/api/config');
  const project = params.get('project') || String(cfg.project);
  const replay = params.get('replay');
  const token = params.get('token') || (await getJSON(`/api/token?project=${encodeURIComponent(project)}`)).token;
  $('st-project').textContent = project;
  const issue = params.get('issue');
  if (issue) {
    await showIssue(cfg, project, issue, token);
    return;
  }
  if (!replay) {
    $('st-replay').textContent = '—';
    $('st-events').textContent = '—';
    await listReplays(cfg, project, token);
    return;
  }
  $('st-replay').textContent = replay;

  const base = `${cfg.serve_url}/v1/projects/${encodeURIComponent(project)}/replays/${encodeURIComponent(replay)}`;
  const auth = { Authorization: `Bearer ${token}` };
  let Player;
  try {
    ({ default: Player } = await import('/vendor/rrweb-player/rrweb-player.js'));
  } catch (e) {
    fail(`cannot load rrweb-player from /vendor (run npm ci in the repository root): ${e}`);
    return;
  }
  $('st-state').textContent = 'fetching from Serve…';
  const metaRes = await fetch(base, { headers: auth });
  state.status = metaRes.status;
  if (!metaRes.ok) {
    fail(`Serve answered HTTP ${metaRes.status}: ${await metaRes.text()}`);
    return;
  }
  const meta = await metaRes.json();
  if (meta.started_at_ms == null) {
    fail('the replay has no timestamped events yet');
    return;
  }
  const view = new WindowedView(Player, base, auth, meta);
  state.view = view;
  state.reads = view.reads;
  state.totalTime = meta.ended_at_ms - meta.started_at_ms;
  state.seek = (offset) => view.seek(meta.started_at_ms + offset);
  state.seekEnd = () => view.seekEnd();
  // The issue markers (shown before the first window, so that a ready
  // page has them) seek through the windowed view, which loads the
  // window of that time.
  const seekable = { goto: (offset) => view.seek(meta.started_at_ms + offset) };
  await showReplayIssues(cfg, project, replay, token, seekable,
    { totalTime: state.totalTime, startTime: meta.started_at_ms });
  await view.open(meta.started_at_ms, params.get('autoplay') !== '0');
  if (params.get('t')) await view.seek(Number(params.get('t')));
  if (state.error) return;
  $('st-state').textContent = `${(state.totalTime / 1000).toFixed(1)} s`;

  const shred = $('shred');
  shred.hidden = false;
  shred.addEventListener('click', async () => {
    shred.disabled = true;
    const del = await fetch(`${cfg.shred_url}/v1/projects/${encodeURIComponent(project)}/replays/${encodeURIComponent(replay)}`, { method: 'DELETE', headers: auth });
    $('st-state').textContent = del.ok ? 'shredded: reload to see Serve answer 410' : `shred failed: HTTP ${del.status}`;
  });
  state.ready = true;
}

// WindowedView plays a replay loaded window by window.
class WindowedView {
  constructor(Player, base, auth, meta) {
    this.Player = Player;
    this.base = base;
    this.auth = auth;
    this.start = meta.started_at_ms;
    this.end = meta.ended_at_ms;
    this.windowMs = Number(params.get('window_ms')) || 60000;
    this.aheadWindows = 3;
    this.reads = []; // {from, to, chain, events}: what was asked of Serve
    this.gen = 0; // a seek starts a new generation; older loaders stop
    this.player = null;
    const slider = $('timeline');
    slider.max = String(this.end - this.start);
    slider.hidden = false;
    slider.addEventListener('change', () => this.seek(this.start + Number(slider.value)));
  }

  async fetchWindow(from, to, chain) {
    const q = new URLSearchParams({ from_ts: String(from), to_ts: String(to) });
    if (!chain) q.set('chain', '0');
    const res = await fetch(`${this.base}/recording?${q}`, { headers: this.auth });
    state.status = res.status;
    if (!res.ok) throw new Error(`Serve answered HTTP ${res.status}: ${await res.text()}`);
    const events = await res.json();
    this.reads.push({ from, to, chain, events: events.length });
    return events;
  }

  // open shows the replay at time t (ms since the epoch): the window from
  // t's snapshot to t + windowMs, then loads the rest in the background.
  async open(t, autoPlay) {
    const gen = ++this.gen;
    const to = Math.min(t + this.windowMs, this.end);
    const events = await this.fetchWindow(t, to, true);
    if (gen !== this.gen) return;
    if (events.length < 2) {
      fail(`the window has ${events.length} event(s); the player needs at least 2`);
      return;
    }
    if (this.player) {
      this.player.$destroy();
      $('player').innerHTML = '';
    }
    this.player = new this.Player({
      target: $('player'),
      props: { events, autoPlay, width: 1024, height: 576, skipInactive: true },
    });
    state.player = this.player;
    this.first = events[0].timestamp;
    this.loadedTo = to;
    state.events = events.length;
    $('st-events').textContent = state.events;
    this.player.goto(Math.max(0, t - this.first), autoPlay);
    state.ready = true;
    this.loadRest(gen);
  }

  // loadRest appends the following windows, without their snapshot
  // chains, while the player plays what it has. It keeps aheadWindows
  // windows ahead of the playhead, no more: a viewer who watches a minute
  // of a two-hour replay does not download two hours.
  async loadRest(gen) {
    while (gen === this.gen && this.loadedTo < this.end) {
      const playhead = this.first + this.player.getReplayer().getCurrentTime();
      if (this.loadedTo - playhead > this.aheadWindows * this.windowMs) {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      const from = this.loadedTo + 1;
      const to = Math.min(from + this.windowMs - 1, this.end);
      let events;
      try {
        events = await this.fetchWindow(from, to, false);
      } catch (e) {
        fail(String(e));
        return;
      }
      if (gen !== this.gen) return;
      for (const ev of events) this.player.addEvent(ev);
      this.loadedTo = to;
      state.events += events.length;
      $('st-events').textContent = state.events;
    }
    if (gen === this.gen) state.loaded = true;
  }

  // seekEnd shows the last moment: the last window, then the player's own
  // end (its clock can differ from the server's timestamps when an SDK
  // mixes seconds and milliseconds, as Sentry's breadcrumbs do).
  async seekEnd() {
    await this.seek(this.end);
    if (this.player) this.player.goto(this.player.getMetaData().totalTime, false);
  }

  // seek plays from t: within what is loaded the player just jumps there;
  // otherwise the window for t is loaded first.
  async seek(t) {
    t = Math.max(this.start, Math.min(t, this.end));
    $('timeline').value = String(t - this.start);
    if (this.player && t >= this.first && t <= this.loadedTo) {
      this.player.goto(t - this.first, false);
      return;
    }
    state.ready = false;
    await this.open(t, false);
  }
}

// showReplayIssues puts the replay's issue occurrences on a timeline under
// the player; a marker or a row seeks the player to the occurrence.
async function showReplayIssues(cfg, project, replay, token, player, meta) {
  const url = `${cfg.serve_url}/v1/projects/${encodeURIComponent(project)}/replays/${encodeURIComponent(replay)}/issues`;
  const res = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
  state.issues = [];
  if (!res.ok) return; // a token without issue:read: the replay still plays
  const { occurrences } = await res.json();
  state.issues = occurrences;
  const seek = (ts) => {
    const offset = Math.max(0, Math.min(meta.totalTime, ts - meta.startTime));
    player.goto(offset, false);
    state.seekedTo = offset;
  };
  state.seekIssue = (i) => seek(occurrences[i].timestamp_ms);
  const bar = $('issue-timeline');
  const list = $('issue-list');
  list.innerHTML = '<tr><th>at</th><th>kind</th><th>issue</th><th>target</th></tr>';
  occurrences.forEach((o, i) => {
    const pct = meta.totalTime > 0 ? (100 * (o.timestamp_ms - meta.startTime)) / meta.totalTime : 0;
    const mark = document.createElement('button');
    mark.type = 'button';
    mark.className = `marker ${o.kind}`;
    mark.style.left = `${Math.max(0, Math.min(100, pct))}%`;
    mark.title = `${o.kind} at ${((o.timestamp_ms - meta.startTime) / 1000).toFixed(1)} s`;
    mark.dataset.index = String(i);
    mark.addEventListener('click', () => seek(o.timestamp_ms));
    bar.appendChild(mark);
    const tr = document.createElement('tr');
    const at = document.createElement('td');
    const go = document.createElement('a');
    go.href = '#';
    go.textContent = `${((o.timestamp_ms - meta.startTime) / 1000).toFixed(1)} s`;
    go.addEventListener('click', (e) => { e.preventDefault(); seek(o.timestamp_ms); });
    at.appendChild(go);
    tr.appendChild(at);
    for (const text of [o.kind, null, (o.details && (o.details.target || o.details.request || o.details.message)) || '']) {
      const td = document.createElement('td');
      if (text === null) {
        const a = document.createElement('a');
        a.href = `/viewer?${new URLSearchParams({ project, issue: o.issue_id, token })}`;
        a.textContent = o.issue_id;
        td.appendChild(a);
      } else {
        td.textContent = text;
      }
      tr.appendChild(td);
    }
    list.appendChild(tr);
  });
  if (occurrences.length === 0) list.innerHTML = '<tr><td class="muted">No issues found in this replay.</td></tr>';
  $('issues').hidden = false;
  const t = Number(params.get('t'));
  if (t > 0) seek(t);
}

// showIssue shows one issue (a member's id shows its merge) and links each
// of its occurrences' replays, at the occurrence's moment.
async function showIssue(cfg, project, issue, token) {
  $('st-replay').textContent = '—';
  $('st-events').textContent = '—';
  const url = `${cfg.serve_url}/v1/projects/${encodeURIComponent(project)}/issues/${encodeURIComponent(issue)}`;
  const res = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
  state.status = res.status;
  if (!res.ok) {
    fail(`Serve answered HTTP ${res.status}: ${await res.text()}`);
    return;
  }
  const d = await res.json();
  state.issue = d;
  $('issue-title').textContent = `${d.id}: ${d.title}`;
  $('issue-meta').textContent = `${d.kind}, ${d.status}, seen ${d.times_seen} times in ${d.replay_count} replays` +
    (d.requested_id !== d.id ? ` (${d.requested_id} is merged into it)` : '');
  const table = $('issue-replays');
  table.innerHTML = '<tr><th>replay</th><th>at</th><th>group</th><th></th></tr>';
  for (const o of d.occurrences) {
    const tr = document.createElement('tr');
    const cells = [o.replay_id, new Date(o.timestamp_ms).toLocaleTimeString(), o.group_id];
    for (const text of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.appendChild(td);
    }
    const td = document.createElement('td');
    const a = document.createElement('a');
    a.href = `/viewer?${new URLSearchParams({ project, replay: o.replay_id, token, t: String(o.timestamp_ms), autoplay: '0' })}`;
    a.textContent = 'view';
    td.appendChild(a);
    tr.appendChild(td);
    table.appendChild(tr);
  }
  $('issue').hidden = false;
  $('st-state').textContent = `issue ${d.id}`;
  state.ready = true;
}

main().catch((e) => fail(String(e)));
