// The viewer fetches a replay's recording from Serve with a bearer token,
// as the product's frontend would, and plays it with rrweb-player.
//
//   /viewer?project=1&replay=UUID[&token=JWT][&autoplay=0]
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

  const shred = $('shred');
  shred.hidden = false;
  shred.addEventListener('click', async () => {
    shred.disabled = true;
    const del = await fetch(`${cfg.shred_url}/v1/projects/${encodeURIComponent(project)}/replays/${encodeURIComponent(replay)}`, { method: 'DELETE', headers: auth });
    $('st-state').textContent = del.ok ? 'shredded: reload to see Serve answer 410' : `shred failed: HTTP ${del.status}`;
  });
  state.ready = true;
}

main().catch((e) => fail(String(e)));
