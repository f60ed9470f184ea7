/* Fire cluster dashboard (browser side).
 *
 * Data: GET /state once for the first paint, then SSE /events; every message is a
 * full snapshot and the page re-renders from it. Text from the server only ever goes
 * through textContent / setAttribute (never innerHTML), so nothing needs escaping.
 */
'use strict';

const SVG_NS = 'http://www.w3.org/2000/svg';
const STATUSES = new Set(['unknown', 'healthy', 'degraded', 'unavailable']);
const NODE_W = 150, NODE_H = 64, ROW_H = 130, COL_W = 190, PAD = 20;
const TL_ROW = 26, TL_AXIS = 24, MIN_SEG_PX = 2;

// ---- small helpers ---------------------------------------------------------------

const $ = (id) => document.getElementById(id);
// The server may omit fields; these turn anything into a safe value.
const list = (x) => (Array.isArray(x) ? x : []);
const text = (x) => (x == null ? '' : String(x));
const status = (s) => (STATUSES.has(s) ? s : 'unknown');
const finite = (x) => typeof x === 'number' && Number.isFinite(x);

function svg(tag, attrs = {}, parent = null) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function html(tag, cls, content, parent) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (content != null) e.textContent = content;
  if (parent) parent.appendChild(e);
  return e;
}

// Times are shown in UTC: the server speaks UTC and operators compare with logs.
const pad2 = (n) => String(n).padStart(2, '0');
function ms(iso) {
  const t = Date.parse(text(iso));
  return Number.isFinite(t) ? t : NaN;
}
function hhmm(t) {
  const d = new Date(t);
  return `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
}
function fmtTime(iso) {
  const t = ms(iso);
  return Number.isFinite(t) ? `${hhmm(t)}:${pad2(new Date(t).getUTCSeconds())} UTC` : text(iso);
}

// ---- connection state --------------------------------------------------------------

function setConnection(state) {
  document.body.dataset.connection = state;
  const label = { live: 'live', lost: 'reconnecting…', connecting: 'connecting…' };
  $('conn-text').textContent = label[state] || state;
  $('lost-banner').hidden = state !== 'lost';
}

// ---- header and notes ----------------------------------------------------------------

function renderHeader(s) {
  const title = `Fire cluster — ${text(s.gateway) || 'gateway'}`;
  $('title').textContent = title;
  document.title = title;
  const gen = $('generated');
  gen.dateTime = text(s.generated);
  gen.textContent = s.generated ? `snapshot ${fmtTime(s.generated)}` : '';
}

function renderNotes(s) {
  const items = list(s.notes).map(text).filter(Boolean);
  const unheard = list(s.feed && s.feed.unheard).map(text).filter(Boolean);
  if (unheard.length) items.push(`event logs not heard: ${unheard.join('; ')}`);
  $('notes-list').replaceChildren(...items.map((n) => html('li', null, n)));
  $('notes').hidden = items.length === 0;
}

// ---- overlay graph -------------------------------------------------------------------

// Elements are built once per layout and then updated in place, so anything holding
// a handle (tests, the browser's hover tooltip) keeps seeing the live element.
const graph = { key: null, nodes: new Map(), links: new Map() };

const linkId = (l) => `${text(l.observer)}->${text(l.neighbor)}`;

function graphModel(s) {
  const daemons = new Map();
  for (const d of list(s.daemons)) if (d && d.name) daemons.set(text(d.name), d);
  const links = list(s.links).filter((l) => l && l.observer && l.neighbor);
  // A link naming a daemon missing from the list is still drawn, to an "unknown" node.
  for (const l of links) {
    for (const name of [text(l.observer), text(l.neighbor)]) {
      if (!daemons.has(name)) {
        daemons.set(name, { name, role: '', status: 'unknown', depth: null, note: 'not in the daemon list' });
      }
    }
  }
  return { daemons, links };
}

// Rows by depth (gaps in depth numbering are squeezed out; a daemon without a depth
// goes to a final row), names sorted within a row and spread evenly across the width.
function layout(daemons) {
  const depthOf = (d) => (finite(d.depth) ? d.depth : Infinity);
  const all = [...daemons.values()];
  const depths = [...new Set(all.map(depthOf))].sort((a, b) => a - b);
  const rows = depths.map((dep) => all.filter((d) => depthOf(d) === dep).map((d) => text(d.name)).sort());
  const width = Math.max(760, Math.max(1, ...rows.map((r) => r.length)) * COL_W);
  const pos = new Map();
  rows.forEach((row, r) => row.forEach((name, i) => {
    pos.set(name, { x: Math.round((width * (i + 1)) / (row.length + 1)), y: PAD + NODE_H / 2 + r * ROW_H });
  }));
  const height = PAD * 2 + NODE_H + (Math.max(rows.length, 1) - 1) * ROW_H;
  return { pos, width, height };
}

// Trim a centre-to-centre segment to the node boxes so the arrowhead stays visible.
function clip(a, b) {
  const dx = b.x - a.x, dy = b.y - a.y;
  const f = Math.min(dx ? (NODE_W / 2 + 4) / Math.abs(dx) : Infinity,
                     dy ? (NODE_H / 2 + 4) / Math.abs(dy) : Infinity);
  if (!(f < 0.5)) return [a.x, a.y, b.x, b.y];
  return [a.x + dx * f, a.y + dy * f, b.x - dx * f, b.y - dy * f];
}

function buildGraph(model, lay) {
  const linksG = $('graph-links'), nodesG = $('graph-nodes');
  linksG.replaceChildren();
  nodesG.replaceChildren();
  graph.nodes.clear();
  graph.links.clear();
  $('graph').setAttribute('viewBox', `0 0 ${lay.width} ${lay.height}`);

  for (const l of model.links) {
    const id = linkId(l);
    if (graph.links.has(id)) continue;
    const [x1, y1, x2, y2] = clip(lay.pos.get(text(l.observer)), lay.pos.get(text(l.neighbor)));
    const g = svg('g', { class: 'link', 'data-link': id }, linksG);
    const title = svg('title', {}, g);
    svg('line', { class: 'hit', x1, y1, x2, y2 }, g); // wide transparent line: easier hovering
    const wire = svg('line', { class: 'wire', x1, y1, x2, y2 }, g);
    graph.links.set(id, { g, title, wire });
  }

  for (const [name, p] of lay.pos) {
    const g = svg('g', { class: 'daemon', 'data-daemon': name, transform: `translate(${p.x} ${p.y})` }, nodesG);
    const title = svg('title', {}, g);
    svg('rect', { x: -NODE_W / 2, y: -NODE_H / 2, width: NODE_W, height: NODE_H, rx: 10 }, g);
    const nameT = svg('text', { class: 'name', y: -10 }, g);
    const roleT = svg('text', { class: 'role', y: 8 }, g);
    const statT = svg('text', { class: 'word', y: 24 }, g);
    graph.nodes.set(name, { g, title, nameT, roleT, statT });
  }
}

function renderGraph(s) {
  const model = graphModel(s);
  const lay = layout(model.daemons);
  // Rebuild only when the set of daemons/links (or where they sit) changes.
  const key = JSON.stringify([[...lay.pos], model.links.map(linkId).sort()]);
  if (key !== graph.key) {
    buildGraph(model, lay);
    graph.key = key;
  }

  for (const [name, d] of model.daemons) {
    const n = graph.nodes.get(name);
    if (!n) continue;
    const st = status(d.status);
    n.g.setAttribute('data-status', st);
    n.g.setAttribute('class', `daemon status-${st}`);
    n.nameT.textContent = name;
    n.roleT.textContent = text(d.role);
    n.statT.textContent = st;
    n.title.textContent = [`${name} (${text(d.role) || 'role unknown'}): ${st}`, text(d.note)]
      .filter(Boolean).join('\n');
  }

  for (const l of model.links) {
    const e = graph.links.get(linkId(l));
    if (!e) continue;
    const st = status(l.status);
    const kind = text(l.kind) || 'query';
    e.g.setAttribute('data-status', st);
    e.g.setAttribute('data-kind', kind);
    e.g.setAttribute('class', `link status-${st} kind-${kind}`);
    // Set as an attribute: url(#…) in an external stylesheet is not resolved uniformly.
    e.wire.setAttribute('marker-end', `url(#arrow-${st})`);
    e.title.textContent = [
      `${text(l.observer)} → ${text(l.neighbor)} (${kind}): ${st}`,
      l.since ? `since ${fmtTime(l.since)}` : '',
      text(l.note),
    ].filter(Boolean).join('\n');
  }

  $('graph-empty').hidden = model.daemons.size > 0;
}

// ---- partitions and queries -----------------------------------------------------------

function renderPartitions(s) {
  const body = $('partitions-body');
  body.replaceChildren();
  const rows = list(s.partitions).filter((p) => p && typeof p === 'object');
  if (!rows.length) {
    const tr = html('tr', 'empty', null, body);
    html('td', 'muted', 'no partitions reported', tr).colSpan = 3;
    return;
  }
  for (const p of rows) {
    const tr = html('tr', null, null, body);
    tr.dataset.partition = text(p.partition);
    html('td', 'partition', text(p.partition), tr);
    const holder = text(p.holder), problem = text(p.problem);
    if (holder) {
      html('td', 'holder', holder, tr);
      const td = html('td', 'path', list(p.path).map(text).join(' → ') || '—', tr);
      if (problem) html('div', 'problem', problem, td); // served, but something is off
    } else {
      // No live copy: the problem is the whole story for this row.
      tr.classList.add('lost');
      html('td', 'problem', problem || 'no live copy', tr).colSpan = 2;
    }
  }
}

function renderQueries(s) {
  const q = (s.queries && typeof s.queries === 'object') ? s.queries : {};
  const rate = finite(q.per_second) ? String(Math.round(q.per_second * 100) / 100) : '—';
  const win = finite(q.window_seconds) ? q.window_seconds : 60;
  $('q-rate').textContent = `${rate} queries/s over the last ${win} s`;
  let p99 = '—';
  if (finite(q.p99_seconds)) {
    const v = q.p99_seconds * 1000;
    p99 = String(v >= 10 ? Math.round(v) : Math.round(v * 10) / 10); // keep sub-10 ms readable
  }
  $('q-p99').textContent = `p99 ${p99} ms`;
  $('q-count').textContent = finite(q.count) ? `(${q.count} queries in window)` : '';
}

// ---- timeline ----------------------------------------------------------------------

// Tick times strictly between t0 and t1, on "round" minute multiples, roughly one per
// 110 px and never crowding the start/end labels.
function innerTicks(t0, t1, px) {
  const MIN = 60000;
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440].map((m) => m * MIN);
  const want = Math.max(1, Math.floor(px / 110));
  const step = steps.find((st) => (t1 - t0) / st <= want) || steps[steps.length - 1];
  const out = [];
  if ((t1 - t0) / step > 200) return out; // absurd span: just start and end
  for (let t = Math.ceil(t0 / step) * step; t < t1; t += step) {
    const x = ((t - t0) / (t1 - t0)) * px;
    if (x > 70 && px - x > 70) out.push(t);
  }
  return out;
}

// Cut one link's history into [from, to) segments of constant status.
function segments(row, t0, t1) {
  const trs = list(row.transitions)
    .filter((tr) => tr && Number.isFinite(ms(tr.at)))
    .sort((a, b) => ms(a.at) - ms(b.at));
  const out = [];
  let from = t0, st = status(row.initial);
  let tip = `${text(row.link)}: ${st} at the start of the window`;
  let initial = true;
  for (const tr of trs) {
    const at = Math.min(Math.max(ms(tr.at), t0), t1);
    // An empty initial segment is just noise; empty transition segments are real flaps.
    if (!(initial && at <= from)) out.push({ from, to: at, status: st, tip });
    from = at;
    st = status(tr.to);
    tip = `${fmtTime(tr.at)}: ${text(tr.from) || '?'} → ${st}` + (tr.reason ? `\n${text(tr.reason)}` : '');
    initial = false;
  }
  out.push({ from, to: t1, status: st, tip });
  return out;
}

function renderTimeline(s) {
  const tl = (s.timeline && typeof s.timeline === 'object') ? s.timeline : {};
  const root = $('timeline'), msg = $('timeline-empty');
  const t0 = ms(tl.start), t1 = ms(tl.end);
  const rows = list(tl.links).filter((r) => r && r.link);
  root.replaceChildren();
  if (!(t1 > t0) || !rows.length) {
    msg.textContent = t1 > t0 ? 'no link history in this window' : 'no timeline yet';
    msg.hidden = false;
    root.toggleAttribute('hidden', true); // SVG elements have no .hidden property
    return;
  }
  msg.hidden = true;
  root.toggleAttribute('hidden', false);

  // Draw in real pixels (viewBox = measured width) so the 2 px minimum is honest.
  const width = Math.max(420, $('timeline-box').clientWidth || 900);
  const labelW = Math.min(260, 20 + 7.5 * Math.max(...rows.map((r) => text(r.link).length)));
  const barX = labelW, barW = Math.max(100, width - labelW - 12);
  const bottom = rows.length * TL_ROW;
  const height = bottom + TL_AXIS;
  root.setAttribute('viewBox', `0 0 ${width} ${height}`);
  root.setAttribute('width', width);
  root.setAttribute('height', height);
  const xOf = (t) => barX + ((Math.min(Math.max(t, t0), t1) - t0) / (t1 - t0)) * barW;

  const axis = svg('g', { class: 'axis' }, root);
  const ticks = [[t0, 'start'], ...innerTicks(t0, t1, barW).map((t) => [t, 'middle']), [t1, 'end']];
  for (const [t, anchor] of ticks) {
    const x = xOf(t);
    svg('line', { class: 'grid', x1: x, x2: x, y1: 0, y2: bottom + 4 }, axis);
    const label = svg('text', { x, y: bottom + 17, 'text-anchor': anchor }, axis);
    label.textContent = anchor === 'middle' ? hhmm(t) : `${hhmm(t)} UTC`;
  }

  rows.forEach((r, i) => {
    const g = svg('g', { class: 'tl-row', 'data-timeline-link': text(r.link),
                         transform: `translate(0 ${i * TL_ROW})` }, root);
    const label = svg('text', { class: 'tl-label', x: labelW - 10, y: TL_ROW / 2 + 4, 'text-anchor': 'end' }, g);
    label.textContent = text(r.link);
    svg('rect', { class: 'tl-track', x: barX, y: 5, width: barW, height: TL_ROW - 10 }, g);
    const segs = segments(r, t0, t1).map((sg) => {
      const w = Math.max(MIN_SEG_PX, xOf(sg.to) - xOf(sg.from));
      return { ...sg, w, x: Math.min(xOf(sg.from), barX + barW - w) };
    });
    // Longest first, so short outages are painted on top and stay visible.
    segs.sort((a, b) => b.w - a.w);
    for (const sg of segs) {
      const rect = svg('rect', { class: 'seg', 'data-status': sg.status,
                                 x: sg.x, y: 5, width: sg.w, height: TL_ROW - 10 }, g);
      svg('title', {}, rect).textContent = sg.tip;
    }
  });
}

// ---- snapshot handling ----------------------------------------------------------------

let lastSnapshot = null;
let lastGenerated = -Infinity;

function accept(snap) {
  if (!snap || typeof snap !== 'object') return;
  // GET /state and the stream race at start-up: never step back to an older picture.
  const t = ms(snap.generated);
  if (Number.isFinite(t)) {
    if (t < lastGenerated) return;
    lastGenerated = t;
  }
  lastSnapshot = snap;
  // Each part is isolated so one malformed field cannot blank the whole page.
  for (const part of [renderHeader, renderNotes, renderGraph, renderPartitions, renderQueries, renderTimeline]) {
    try {
      part(snap);
    } catch (err) {
      console.error(`dashboard: ${part.name} failed`, err);
    }
  }
  document.body.dataset.snapshot = text(snap.generated);
}

function connect() {
  const es = new EventSource('/events');
  es.onopen = () => setConnection('live');
  es.onmessage = (ev) => {
    setConnection('live');
    let snap;
    try {
      snap = JSON.parse(ev.data);
    } catch (err) {
      console.warn('dashboard: unparsable snapshot', err);
      return;
    }
    accept(snap);
  };
  es.onerror = () => {
    if (es.readyState === EventSource.OPEN) return;
    setConnection('lost');
    // CONNECTING: the browser retries by itself. CLOSED (e.g. an HTTP error reply):
    // it has given up, so start a fresh EventSource after a pause.
    if (es.readyState === EventSource.CLOSED) {
      es.close();
      setTimeout(connect, 3000);
    }
  };
}

// The timeline is laid out in pixels, so redo it when the width changes.
let resizePending = false;
window.addEventListener('resize', () => {
  if (resizePending || !lastSnapshot) return;
  resizePending = true;
  requestAnimationFrame(() => {
    resizePending = false;
    try {
      renderTimeline(lastSnapshot);
    } catch (err) {
      console.error('dashboard: timeline resize failed', err);
    }
  });
});

function start() {
  setConnection('connecting');
  fetch('/state', { cache: 'no-store' })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then(accept)
    .catch((err) => console.warn('dashboard: GET /state failed', err));
  connect();
}

start();
