// The ledgermq console's script (no framework): polls /api/overview every POLL_MS and renders
// every section from the answer. When the node it reads from stops answering, it asks the other
// nodes' consoles (the overview lists them) and goes on through the first that answers, saying
// which one it reads from. Actions are sent to that same console.
'use strict';

const POLL_MS = 1000;
/** A console that has not answered this fast counts as down for this round. */
const FETCH_TIMEOUT_MS = 1500;

const state = { base: location.origin, self: null, consoles: [], allowWrites: false, overview: null };

function $(id) { return document.getElementById(id); }

/** An element with attributes and children (strings become text: nothing is parsed as HTML). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function fetchJson(base, path, options) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
  try {
    const response = await fetch(base + path, { ...options, signal: controller.signal, cache: 'no-store' });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status} without a JSON body` }));
    return { status: response.status, body };
  } finally {
    clearTimeout(timer);
  }
}

/** The overview from the current console, else from the first other console that answers. */
async function readOverview() {
  const candidates = [state.base, ...state.consoles.map((c) => c.url.replace(/\/$/, '')).filter((u) => u !== state.base)];
  const failures = [];
  for (const base of candidates) {
    try {
      const { status, body } = await fetchJson(base, '/api/overview');
      if (status !== 200) throw new Error(body.error || `HTTP ${status}`);
      state.base = base;
      return body;
    } catch (error) {
      failures.push(`${base}: ${error.name === 'AbortError' ? 'no answer' : error.message}`);
    }
  }
  throw new Error(`no console answered (${failures.join('; ')})`);
}

async function poll() {
  try {
    const overview = await readOverview();
    state.overview = overview;
    state.self = overview.self;
    state.consoles = overview.consoles;
    state.allowWrites = overview.allowWrites;
    render(overview);
  } catch (error) {
    $('source').textContent = error.message;
    $('source').className = 'source failover';
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function render(o) {
  const own = state.base === location.origin;
  $('source').textContent = `reading from ${o.self} (${state.base})${own ? '' : ` — this page's own node ${location.host} does not answer`} at ${new Date(o.readAtMs).toLocaleTimeString()}`;
  $('source').className = own ? 'source' : 'source failover';
  $('leader').textContent = o.leader === null ? 'no leader (election in progress?)' : `leader: ${o.leader} (term ${o.term})`;
  $('writes').textContent = o.allowWrites ? 'writes allowed' : 'read-only (http.allowWrites is false)';
  renderNodes(o);
  renderTimeline(o.leaderChanges);
  renderChart(o.chart);
  renderTopics(o);
  renderGroups(o);
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function rate(n) { return n === null ? '–' : n.toFixed(n < 10 ? 1 : 0); }

function renderNodes(o) {
  const rows = o.nodes.map((n) => {
    const s = n.status;
    if (s === null) return el('tr', { class: 'down', 'data-node': n.id, 'data-role': 'down' }, el('td', {}, n.id), el('td', {}, 'down'), el('td', { colspan: '8' }, n.error || 'no answer'));
    const lag = s.followers.length === 0 ? '–' : s.followers.map((f) => `${f.id}: ${f.lag}`).join(', ');
    return el('tr', { class: s.role === 'leader' ? 'leader-row' : '', 'data-node': n.id, 'data-role': s.role },
      el('td', {}, n.id + (n.id === o.self ? ' (this console)' : '')), el('td', {}, s.role), el('td', { class: 'num' }, s.term),
      el('td', { class: 'num' }, s.lastIndex), el('td', { class: 'num' }, s.commitIndex), el('td', { class: 'num' }, s.appliedIndex),
      el('td', {}, lag), el('td', { class: 'num' }, `${s.eventLoopDelayP99Ms} ms`), el('td', { class: 'num' }, rate(n.fsyncsPerSec)), el('td', { class: 'num' }, bytes(s.logBytes)));
  });
  $('nodes').tBodies[0].replaceChildren(...rows);
}

function renderTimeline(changes) {
  const items = [...changes].reverse().map((c) => el('li', {}, `${new Date(c.atMs).toLocaleTimeString()} — term ${c.term}: ${c.leader === null ? 'no leader' : `${c.leader} leads`}`));
  $('timeline').replaceChildren(...(items.length === 0 ? [el('li', {}, 'none seen yet')] : items));
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Two lines over the last 5 minutes: messages/s in (left axis) and produce p99 ms (right axis). */
function renderChart(points) {
  const chart = $('chart-svg');
  const [w, h, left, right, top, bottom] = [640, 180, 44, 44, 10, 24];
  // The last 5 minutes, or from the first point on (at least one minute) while there are fewer.
  const endMs = Math.floor(Date.now() / 1000) * 1000;
  const firstMs = points.length === 0 ? endMs : points[0].atMs;
  const startMs = Math.max(endMs - 300_000, Math.min(firstMs, endMs - 60_000));
  const shown = points.filter((p) => p.atMs >= startMs);
  const maxIn = Math.max(1, ...shown.map((p) => p.messages));
  const maxP99 = Math.max(1, ...shown.map((p) => p.p99Ms ?? 0));
  const x = (atMs) => left + ((atMs - startMs) / (endMs - startMs)) * (w - left - right);
  const y = (v, max) => top + (1 - v / max) * (h - top - bottom);
  const line = (values, max, cls) => svg('polyline', { points: values.map(([t, v]) => `${x(t).toFixed(1)},${y(v, max).toFixed(1)}`).join(' '), fill: 'none', stroke: cls === 'in' ? '#2f7ed8' : '#d8582f', 'stroke-width': 1.5, class: cls });
  const parts = [
    svg('rect', { x: left, y: top, width: w - left - right, height: h - top - bottom, fill: '#fafbfc', stroke: '#d8dde4' }),
    svg('text', { x: left - 4, y: top + 10, 'text-anchor': 'end', 'font-size': 10 }, String(maxIn)),
    svg('text', { x: left - 4, y: h - bottom, 'text-anchor': 'end', 'font-size': 10 }, '0'),
    svg('text', { x: w - right + 4, y: top + 10, 'font-size': 10 }, `${maxP99.toFixed(1)} ms`),
    svg('text', { x: left, y: h - 6, 'font-size': 10 }, `-${Math.round((endMs - startMs) / 1000)} s`),
    svg('text', { x: w - right, y: h - 6, 'text-anchor': 'end', 'font-size': 10 }, 'now'),
    line(shown.map((p) => [p.atMs, p.messages]), maxIn, 'in'),
    line(shown.filter((p) => p.p99Ms !== null).map((p) => [p.atMs, p.p99Ms]), maxP99, 'p99'),
  ];
  if (shown.length === 0) parts.push(svg('text', { x: w / 2, y: h / 2, 'text-anchor': 'middle', 'font-size': 12 }, 'no produce requests seen yet'));
  chart.replaceChildren(...parts);
}

function renderTopics(o) {
  const body = $('topic-table').tBodies[0];
  if (o.topics === null) return body.replaceChildren(el('tr', {}, el('td', { colspan: '4', class: 'unknown' }, `topics unknown: ${o.topicsError}`)));
  const rows = o.topics.map((t) => el('tr', { 'data-topic': t.topic },
    el('td', {}, t.topic), el('td', { class: 'num' }, t.queues),
    el('td', {}, t.queueOffsets.map((q) => `${q.queue}: ${q.minOffset}–${q.maxOffset}`).join(', ')),
    el('td', { class: 'num' }, rate(t.messagesPerSec))));
  body.replaceChildren(...(rows.length === 0 ? [el('tr', {}, el('td', { colspan: '4' }, 'no topics yet'))] : rows));
}

/** Backlog in seconds: a number, or "unknown" with the broker's reason — never -1. */
function lagSeconds(q) {
  if (typeof q.lagSeconds === 'number') return el('td', { class: 'num lag-seconds' }, q.lagSeconds.toFixed(1));
  return el('td', { class: 'unknown lag-seconds' }, `unknown: ${q.lagSecondsUnknown || 'the broker did not report it'}`);
}

function renderGroups(o) {
  const body = $('group-table').tBodies[0];
  if (o.groups === null) return body.replaceChildren(el('tr', {}, el('td', { colspan: '7', class: 'unknown' }, `groups unknown: ${o.groupsError}`)));
  const rows = o.groups.flatMap((g) => {
    const owner = (q) => g.members.find((m) => m.topic === q.topic && m.queueIds.includes(q.queueId))?.consumerId ?? '–';
    const queueRows = g.queues.map((q) => el('tr', { 'data-group': g.group, 'data-queue': `${q.topic}/${q.queueId}` },
      el('td', {}, g.group), el('td', {}, `${q.topic}/${q.queueId}`), el('td', { class: 'num' }, q.committedOffset), el('td', { class: 'num' }, q.nextOffset),
      el('td', { class: 'num lag' }, q.lag), lagSeconds(q), el('td', {}, owner(q))));
    const extra = [];
    if (g.members.length > 0) extra.push(`${new Set(g.members.map((m) => m.consumerId)).size} member(s): ${g.members.map((m) => `${m.consumerId} → ${m.topic} [${m.queueIds.join(', ')}]`).join('; ')}`);
    else extra.push('no live members (the leader has heard no heartbeat)');
    if (g.dlq.messages > 0) extra.push(`${g.dlq.messages} dead letters, ${g.dlq.resent} resent`);
    return [...queueRows, el('tr', { class: 'group-info' }, el('td', {}, ''), el('td', { colspan: '6' }, extra.join(' · ')))];
  });
  body.replaceChildren(...(rows.length === 0 ? [el('tr', {}, el('td', { colspan: '7' }, 'no consumer group has committed an offset yet'))] : rows));
}

function showResult(id, text, kind) {
  const node = $(id);
  node.className = `result ${kind || ''}`;
  node.replaceChildren(typeof text === 'string' ? document.createTextNode(text) : text);
}

/** A POST to the console being read; the answer's error (403 when writes are off) is shown as is. */
async function post(path, body) {
  try {
    return await fetchJson(state.base, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch (error) {
    return { status: 0, body: { error: `no answer from ${state.base}: ${error.message}` } };
  }
}

async function topicAction(path, verb) {
  const topic = $('create-topic-name').value.trim();
  const queues = Number($('create-topic-queues').value);
  const { status, body } = await post(path, { topic, queues });
  if (status === 200) showResult('topic-result', `${verb} ${body.topic}: ${body.queues} queues`);
  else showResult('topic-result', `${verb} failed: ${body.error}`, 'error');
}

$('create-topic').addEventListener('submit', (e) => { e.preventDefault(); void topicAction('/api/topics', 'created'); });
$('grow-topic-submit').addEventListener('click', () => void topicAction('/api/topics/grow', 'grew'));

let previewed = null;
$('reset-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const request = { group: $('reset-group').value.trim(), topic: $('reset-topic').value.trim(), to: $('reset-to').value.trim() };
  const { status, body } = await post('/api/groups/reset', { ...request, dryRun: true });
  if (status !== 200) { previewed = null; $('reset-apply').disabled = true; return showResult('reset-result', `preview failed: ${body.error}`, 'error'); }
  previewed = request;
  $('reset-apply').disabled = false;
  showResult('reset-result', `dry run — nothing changed yet:\n${body.offsets.map((q) => `${request.topic}/${q.queueId}: ${q.committed ?? '(none)'} → ${q.start}`).join('\n')}`);
});
$('reset-apply').addEventListener('click', async () => {
  if (previewed === null) return;
  const { status, body } = await post('/api/groups/reset', { ...previewed, dryRun: false });
  $('reset-apply').disabled = true;
  if (status !== 200) return showResult('reset-result', `reset failed: ${body.error}`, 'error');
  showResult('reset-result', `reset done:\n${body.offsets.map((q) => `${previewed.topic}/${q.queueId}: ${q.committed ?? '(none)'} → ${q.start}`).join('\n')}`);
  previewed = null;
});

function messageView(m) {
  const fields = [
    `msgId ${m.msgId}`, `topic ${m.topic}`, `queue ${m.queueId}`, `offset ${m.offset}`,
    `stored ${new Date(m.storeTimestampMs).toISOString()}`, m.tag === undefined ? null : `tag ${m.tag}`,
    m.keys === undefined ? null : `keys ${m.keys.join(', ')}`, `${m.bodyBytes} bytes${m.bodyTruncated ? ' (first 64 KiB shown)' : ''}`,
  ].filter((f) => f !== null);
  const properties = m.properties === undefined ? [] : [el('div', {}, `properties: ${Object.entries(m.properties).map(([k, v]) => `${k}=${v}`).join(', ')}`)];
  const body = m.bodyText !== null ? el('pre', { class: 'body text' }, m.bodyText) : el('pre', { class: 'body hex' }, m.bodyHex.replace(/(..)/g, '$1 ').trim());
  return el('div', { class: 'message' }, el('div', {}, fields.join(' · ')), ...properties, el('div', {}, m.bodyText !== null ? 'body (text):' : 'body (hex):'), body);
}

$('lookup-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const msgId = $('lookup-msgid').value.trim();
  const query = msgId !== '' ? `msgId=${encodeURIComponent(msgId)}` : `topic=${encodeURIComponent($('lookup-topic').value.trim())}&key=${encodeURIComponent($('lookup-key').value.trim())}`;
  let answer;
  try {
    answer = await fetchJson(state.base, `/api/messages?${query}`);
  } catch (error) {
    answer = { status: 0, body: { error: `no answer from ${state.base}: ${error.message}` } };
  }
  const { status, body } = answer;
  if (status === 200) showResult('lookup-result', el('div', {}, el('div', { class: 'found' }, `found ${body.messages.length} message(s)`), ...body.messages.map(messageView)));
  else if (status === 404 && body.result === 'not-found') showResult('lookup-result', 'not found: no stored message matches', 'notfound');
  else showResult('lookup-result', `lookup failed (the answer is unknown): ${body.error}`, 'error');
});

async function listDeadLetters() {
  const group = $('dlq-group').value.trim();
  const { status, body } = await fetchJson(state.base, `/api/dlq?group=${encodeURIComponent(group)}`).catch((error) => ({ status: 0, body: { error: error.message } }));
  if (status !== 200) return showResult('dlq-result', `listing failed: ${body.error}`, 'error');
  if (body.deadLetters.length === 0) return showResult('dlq-result', `${group} has no dead letters`);
  const rows = body.deadLetters.map((d) => {
    const resend = el('button', { type: 'button', 'data-msgid': d.msgId }, d.resent ? 'resent' : 'Resend');
    if (d.resent) resend.disabled = true;
    resend.addEventListener('click', async () => {
      const { status: s, body: b } = await post('/api/dlq/resend', { group, msgId: d.msgId });
      if (s !== 200) return showResult('dlq-result', `resend failed: ${b.error}`, 'error');
      void listDeadLetters();
    });
    return el('tr', {}, el('td', {}, d.msgId), el('td', {}, `${d.topic}/${d.queue}@${d.offset}`), el('td', {}, d.reason), el('td', { class: 'num' }, d.attempts), el('td', {}, new Date(d.lastFailureMs).toLocaleString()), el('td', {}, resend));
  });
  showResult('dlq-result', el('table', {}, el('thead', {}, el('tr', {}, ...['msgId', 'from', 'reason', 'attempts', 'last failure', ''].map((h) => el('th', {}, h)))), el('tbody', {}, ...rows)));
}

$('dlq-form').addEventListener('submit', (e) => { e.preventDefault(); void listDeadLetters(); });
$('dlq-resend-all').addEventListener('click', async () => {
  const { status, body } = await post('/api/dlq/resend', { group: $('dlq-group').value.trim() });
  if (status !== 200) return showResult('dlq-result', `resend failed: ${body.error}`, 'error');
  showResult('dlq-result', `resent ${body.resent} dead letter(s)`);
});

void poll();
