// Live charts of the dev stack's metrics: fetch /api/metrics every second,
// turn the cumulative totals into per-second rates and per-interval means,
// and draw each series on its own canvas. No libraries.
"use strict";

const keep = 300; // points: five minutes at one a second
const charts = [
  { id: "ingest", title: "Segments received /s", unit: "/s", value: (d, dt) => d.received / dt },
  { id: "rejects", title: "Segments rejected /s", unit: "/s", value: (d, dt) => d.rejected / dt },
  { id: "flushsize", title: "Flush size (mean bytes)", unit: "B", value: (d) => (d.flushes > 0 ? d.flush_bytes / d.flushes : null) },
  { id: "flushage", title: "Flush age (mean s)", unit: "s", value: (d) => (d.flushes > 0 ? d.flush_age_s / d.flushes : null) },
  { id: "ack", title: "Ack latency (mean ms)", unit: "ms", value: (d) => (d.acks > 0 ? (1000 * d.ack_wait_s) / d.acks : null) },
  { id: "reads", title: "Recording reads /s (Serve)", unit: "/s", value: (d, dt) => d.reads / dt },
];
const series = Object.fromEntries(charts.map((c) => [c.id, []]));
let prev = null;

const root = document.getElementById("charts");
for (const c of charts) {
  const card = document.createElement("div");
  card.className = "card";
  card.innerHTML = `<h2>${c.title}<span class="now" id="now-${c.id}">–</span></h2><canvas id="cv-${c.id}"></canvas>`;
  root.appendChild(card);
}

async function tick() {
  try {
    const r = await fetch("/api/metrics", { cache: "no-store" });
    const m = await r.json();
    const cur = { t: m.time, ...m.totals };
    if (prev) {
      const dt = Math.max((cur.t - prev.t) / 1000, 0.001);
      const delta = {};
      for (const k of Object.keys(cur)) delta[k] = Math.max(cur[k] - (prev[k] || 0), 0);
      for (const c of charts) {
        const s = series[c.id];
        s.push(c.value(delta, dt));
        if (s.length > keep) s.shift();
        const last = s[s.length - 1];
        document.getElementById("now-" + c.id).textContent = last == null ? "–" : fmt(last) + " " + c.unit;
        draw(document.getElementById("cv-" + c.id), s);
      }
    }
    prev = cur;
  } catch (e) {
    console.warn("metrics", e);
  }
}

function fmt(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return v.toFixed(v < 10 ? 2 : 0);
}

function draw(canvas, s) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const vals = s.filter((v) => v != null);
  const max = Math.max(1e-9, ...vals) * 1.1;
  g.strokeStyle = "#ddd";
  g.beginPath();
  for (let i = 0; i <= 4; i++) { const y = (h - 14) * (i / 4) + 2; g.moveTo(0, y); g.lineTo(w, y); }
  g.stroke();
  g.fillStyle = "#888";
  g.font = "11px sans-serif";
  g.fillText(fmt(max), 4, 12);
  g.strokeStyle = "#2a6fdb";
  g.lineWidth = 1.5;
  g.beginPath();
  let pen = false;
  s.forEach((v, i) => {
    if (v == null) { pen = false; return; }
    const x = (w * i) / (keep - 1), y = (h - 14) * (1 - v / max) + 2;
    if (pen) g.lineTo(x, y); else g.moveTo(x, y);
    pen = true;
  });
  g.stroke();
}

setInterval(tick, 1000);
tick();
