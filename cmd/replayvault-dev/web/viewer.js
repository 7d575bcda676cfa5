// The viewer fetches a replay's recording from Serve with a bearer token,
// as the product's frontend would, and plays it with rrweb-player.
//
//   /viewer?project=1&replay=UUID[&token=JWT][&autoplay=0][&t=MS]
//   /viewer?project=1&issue=P1-3     an issue and the replays it was seen in
//
// A replay shows the issues found in it (Serve's replay issues API) as
// markers on a timeline under the player; clicking one seeks there. t=MS
// (ms since the epoch) seeks to that moment once loaded.
//
// Without a token it asks the dev stack for one; without a replay it lists
// the project's recent replays. window.__replayvault tells the browser test
// what loaded: {ready, events, status, error}, plus seekEnd() to show the
// replay's last frame.

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

async function listReplays(project, token) {
  const replays = await getJSON(`/api/replays?project=${encodeURIComponent(project)}`);
  const table = $('replays');
  table.innerHTML = '<tr><th>replay</th><th>segments</th><th>last seen</th><th></th></tr>';
  for (const r of replays) {
    const tr = document.createElement('tr');
    const link = r.shredded
      ? '<span class="muted">shredded</span>'
      : `<a href="/viewer?${new URLSearchParams({ project, replay: r.replay, token })}">view</a>`;
    tr.innerHTML = `<td class="mono">${r.replay}</td><td>${r.segments}</td><td>${new Date(r.last_seen).toLocaleTimeString()}</td><td>${link}</td>`;
    table.appendChild(tr);
  }
  if (replays.length === 0) table.innerHTML = '<tr><td class="muted">No replays yet: record one with the <a href="/recorder">recorder</a>.</td></tr>';
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
    await listReplays(project, token);
    return;
  }
  $('st-replay').textContent = replay;

  const url = `${cfg.serve_url}/v1/projects/${encodeURIComponent(project)}/replays/${encodeURIComponent(replay)}/recording`;
  const auth = { Authorization: `Bearer ${token}` };
  $('st-state').textContent = 'fetching from Serve…';
  const res = await fetch(url, { headers: auth });
  state.status = res.status;
  if (!res.ok) {
    fail(`Serve answered HTTP ${res.status}: ${await res.text()}`);
    return;
  }
  const events = await res.json();
  state.events = events.length;
  $('st-events').textContent = events.length;

  let Player;
  try {
    ({ default: Player } = await import('/vendor/rrweb-player/rrweb-player.js'));
  } catch (e) {
    fail(`cannot load rrweb-player from /vendor (run npm ci in the repository root): ${e}`);
    return;
  }
  if (events.length < 2) {
    fail(`the replay has ${events.length} event(s); the player needs at least 2`);
    return;
  }
  const player = new Player({
    target: $('player'),
    props: {
      events,
      autoPlay: params.get('autoplay') !== '0',
      width: 1024,
      height: 576,
      skipInactive: true,
    },
  });
  const meta = player.getMetaData();
  state.totalTime = meta.totalTime;
  state.seekEnd = () => player.goto(meta.totalTime, false);
  state.player = player;
  $('st-state').textContent = `${(meta.totalTime / 1000).toFixed(1)} s`;
  await showReplayIssues(cfg, project, replay, token, player, meta);

  const shred = $('shred');
  shred.hidden = false;
  shred.addEventListener('click', async () => {
    shred.disabled = true;
    const del = await fetch(`${cfg.shred_url}/v1/projects/${encodeURIComponent(project)}/replays/${encodeURIComponent(replay)}`, { method: 'DELETE', headers: auth });
    $('st-state').textContent = del.ok ? 'shredded: reload to see Serve answer 410' : `shred failed: HTTP ${del.status}`;
  });
  state.ready = true;
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
  const bar = $('timeline');
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
