// castrig: a run's page — live while the run goes on, its report once it has ended (one design).
// Data comes from the JSON API and a server-sent event stream that castrig feeds from the run's
// SQLite as the runner writes it, plus the report's data (/api/runs/{uid}/report: what went wrong,
// steps and crash → resume gaps, RH bands, one section per membrane with its verdict, metrics,
// pore sizes and micrographs); a saved report (castrig report) carries all of it inside the page. Everything from files is put in the page as text (never HTML).
// Plots are drawn here on <canvas>: wheel zooms the time axis, drag pans, double-click shows the
// whole run again (an 8-hour trace is readable at the minute scale). No library, no CDN.
(function () {
  'use strict';
  // a run whose process still holds it (castrig.store.live.LIVE_STATES): never 'running' while the rig is made safe
  const LIVE = ['running', 'paused', 'pausing', 'making_safe', 'unsafe_retrying'];
  const root = document.getElementById('run');
  const uid = root.dataset.uid;
  const api = '/api/runs/' + encodeURIComponent(uid);
  const data = {};            // channel -> {t: [], v: []}
  let cursor = 0, lastEvent = 0, run = null, rep = null;
  const SVG = 'http://www.w3.org/2000/svg';
  function sv(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const view = { follow: true, x0: 0, x1: 1 };
  const plots = [];

  // -- helpers ---------------------------------------------------------------------------------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      // a style through the CSSOM: the page's Content-Security-Policy refuses style attributes
      if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v;
      else if (k === 'style') e.style.cssText = v; else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k);
    return e;
  }
  const $ = (id) => document.getElementById(id);
  function dur(s) {
    if (s === null || s === undefined || isNaN(s)) return '—';
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h + ':' + String(m).padStart(2, '0') + ':' + String(sec).padStart(2, '0');
  }
  function num(x, d) { return (x === null || x === undefined || isNaN(x)) ? '—' : Number(x).toFixed(d); }
  function last(ch) { const s = data[ch]; return s && s.v.length ? s.v[s.v.length - 1] : null; }
  function set(id, text) { const e = $(id); if (e && e.textContent !== text) e.textContent = text; }

  // -- layout (static markup; values go in as text) ------------------------------------------------
  root.append(
    el('h1', {}, el('span', { id: 'uid', text: uid }), ' ', el('span', { id: 'status', class: 'badge', text: '…' })),
    el('div', { id: 'meta', class: 'hint' }),
    el('div', { id: 'problems-box', style: 'display:none' }, el('h2', { text: 'What went wrong' }), el('div', { id: 'problems' })),
    el('div', { class: 'cards' },
      card('step', 'step'), card('step-label', 'step label'), card('step-left', 'time left in step'),
      card('run-left', 'time left in run'), card('rh', 'RH near membrane / setpoint ± band'),
      card('room', 'room T / RH'), card('flows', 'flows dry / wet (slpm)'), card('pumps', 'pumps infused (mL)')),
    el('div', { id: 'warning-card', class: 'card warn', style: 'display:none;margin-top:8px' },
      el('div', { class: 'k', text: 'last warning' }), el('div', { class: 'v', id: 'last-warning' })),
    el('div', { class: 'actions', id: 'actions' },
      el('label', {}, 'operator token ', el('input', { id: 'token', type: 'password', autocomplete: 'off', size: '30' })),
      el('button', { id: 'btn-pause', type: 'button', text: 'Pause' }),
      el('button', { id: 'btn-resume', type: 'button', text: 'Resume' }),
      el('button', { id: 'btn-abort', type: 'button', text: 'Abort to safe state' }),
      el('span', { id: 'action-msg' })),
    el('h2', { text: 'Plots' }),
    el('div', { class: 'hint', text: 'wheel: zoom time · drag: pan · double-click: the whole run (and follow it live)' }),
    el('div', { id: 'plots' }),
    el('div', { class: 'plot', id: 'timeline-box' }, el('div', { class: 'legend' }, el('b', { text: 'steps and events' }),
      el('span', {}, el('i', { style: 'background:#c5221f' }), 'problem / crash → resume gap')), el('div', { id: 'timeline' })),
    el('h2', { text: 'Membranes' }), el('div', { id: 'membranes' }), el('div', { id: 'membrane-sections' }),
    el('h2', { id: 'micrographs-h', text: 'Micrographs' }), el('div', { id: 'micrographs', class: 'micrographs' }),
    el('h2', { text: 'Event log' }),
    el('table', { id: 'events' }, el('thead', {}, el('tr', {}, el('th', { text: 't (run)' }), el('th', { text: 'kind' }),
      el('th', { text: 'source' }), el('th', { text: 'message' }))), el('tbody', { id: 'events-body' })),
    el('h2', { text: 'Recipe (as written)' }), el('div', { id: 'recipe-source', class: 'hint' }), el('pre', { id: 'recipe' }),
    el('details', {}, el('summary', { text: 'hardware profile the run used' }), el('pre', { id: 'profile' })),
    el('p', { class: 'hint', id: 'run-folder' }),
    el('p', { class: 'hint' }, el('a', { id: 'save-link', href: '/runs/' + encodeURIComponent(uid) + '/report.html', download: uid + '.html',
      text: 'save this page as one self-contained HTML file' })));

  function card(id, label) { return el('div', { class: 'card' }, el('div', { class: 'k', text: label }), el('div', { class: 'v', id: id, text: '—' })); }

  // -- plots -----------------------------------------------------------------------------------------
  const COLORS = { rh_near_pct: '#1f77b4', rh_setpoint_pct: '#ff7f0e', rh_room_pct: '#7f7f7f', chamber_rh_pct: '#9467bd',
    dry_flow_slpm: '#ff7f0e', wet_flow_slpm: '#1f77b4', dry_setpoint_slpm: '#ffbb78', wet_setpoint_slpm: '#aec7e8',
    caster_infused_ml: '#2ca02c', water_pump_infused_ml: '#17becf', t_near_c: '#d62728', t_room_c: '#8c564b', wet_fraction: '#1f77b4' };
  const PLOTS = [
    { id: 'plot-rh', title: 'RH (%RH)', lo: 0, hi: 100, channels: [['rh_near_pct', 'RH near membrane'], ['rh_setpoint_pct', 'setpoint', true],
      ['rh_room_pct', 'room RH'], ['chamber_rh_pct', 'chamber RH']] },
    { id: 'plot-flows', title: 'flows (slpm)', lo: 0, channels: [['dry_flow_slpm', 'dry'], ['wet_flow_slpm', 'wet'],
      ['dry_setpoint_slpm', 'dry setpoint', true], ['wet_setpoint_slpm', 'wet setpoint', true]] },
    { id: 'plot-pumps', title: 'pump volumes (mL)', lo: 0, channels: [['caster_infused_ml', 'caster'], ['water_pump_infused_ml', 'water pump']] },
    { id: 'plot-t', title: 'temperature (°C)', channels: [['t_near_c', 'near membrane'], ['t_room_c', 'room']] },
  ];

  function makePlot(spec) {
    const legend = el('div', { class: 'legend' }, el('b', { text: spec.title }));
    for (const [ch, name, dashed] of spec.channels) {
      legend.append(el('span', { 'data-ch': ch }, el('i', { style: 'background:' + COLORS[ch] + (dashed ? ';opacity:.6' : '') }), name));
    }
    const readout = el('span', { class: 'readout' });
    legend.append(readout);
    const canvas = el('canvas', { id: spec.id, 'data-points': '0', 'data-last-t': '' });
    const box = el('div', { class: 'plot' }, legend, canvas);
    $('plots').append(box);
    const p = { spec, canvas, legend, readout, hover: null };
    attachInteraction(p);
    plots.push(p);
    return p;
  }

  function extent() {
    let t1 = 0;
    for (const s of Object.values(data)) if (s.t.length) t1 = Math.max(t1, s.t[s.t.length - 1]);
    return [0, Math.max(t1, 10)];
  }
  function xRange() { return view.follow ? extent() : [view.x0, view.x1]; }
  function lowerBound(a, x) { let lo = 0, hi = a.length; while (lo < hi) { const m = (lo + hi) >> 1; if (a[m] < x) lo = m + 1; else hi = m; } return lo; }
  function niceStep(span, n, steps) {
    const raw = span / n;
    if (steps) { for (const s of steps) if (s >= raw) return s; return steps[steps.length - 1] * Math.ceil(raw / steps[steps.length - 1]); }
    const p = Math.pow(10, Math.floor(Math.log10(raw))); const f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }
  const TSTEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

  function draw(p) {
    const c = p.canvas, dpr = window.devicePixelRatio || 1;
    const W = c.clientWidth, H = c.clientHeight;
    if (!W) return;
    if (c.width !== Math.round(W * dpr)) { c.width = Math.round(W * dpr); c.height = Math.round(H * dpr); }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const L = 52, R = 10, T = 8, B = 24, pw = W - L - R, ph = H - T - B;
    const [x0, x1] = xRange();
    // y range from what is visible
    let lo = Infinity, hi = -Infinity, nPts = 0, lastT = null;
    for (const [ch] of p.spec.channels) {
      const s = data[ch]; if (!s || !s.t.length) continue;
      const i0 = Math.max(0, lowerBound(s.t, x0) - 1), i1 = Math.min(s.t.length, lowerBound(s.t, x1) + 1);
      for (let i = i0; i < i1; i++) { const v = s.v[i]; if (v === null || isNaN(v)) continue; if (v < lo) lo = v; if (v > hi) hi = v; }
      if (ch === p.spec.channels[0][0]) { nPts = s.t.length; lastT = s.t[s.t.length - 1]; }
    }
    const bands = p.spec.id === 'plot-rh' && rep ? rep.bands.filter((b) => b.t1_s >= x0 && b.t0_s <= x1) : [];
    for (const b of bands) { lo = Math.min(lo, b.lo); hi = Math.max(hi, b.hi); }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    const minSpan = p.spec.lo === 0 && p.spec.hi === 100 ? 4 : 0.05;
    if (hi - lo < minSpan) { const m = (hi + lo) / 2; lo = m - minSpan / 2; hi = m + minSpan / 2; }
    const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
    if (p.spec.lo !== undefined) lo = Math.max(lo, p.spec.lo);   // an RH axis never goes below 0 %RH
    if (p.spec.hi !== undefined) hi = Math.min(hi, p.spec.hi);
    if (hi <= lo) hi = lo + 1;
    const X = (t) => L + (t - x0) / (x1 - x0) * pw, Y = (v) => T + (1 - (v - lo) / (hi - lo)) * ph;
    // grid and axes
    g.font = '11px system-ui, DejaVu Sans, sans-serif'; g.fillStyle = '#5f6368'; g.strokeStyle = '#eceff1'; g.lineWidth = 1;
    const ys = niceStep(hi - lo, 5);
    g.textAlign = 'right'; g.textBaseline = 'middle';
    for (let v = Math.ceil(lo / ys) * ys; v <= hi + 1e-9; v += ys) {
      const y = Math.round(Y(v)) + 0.5; g.beginPath(); g.moveTo(L, y); g.lineTo(L + pw, y); g.stroke();
      g.fillText(Number(v.toFixed(6)).toString(), L - 4, y);
    }
    const xs = niceStep(x1 - x0, Math.max(2, Math.floor(pw / 90)), TSTEPS);
    g.textAlign = 'center'; g.textBaseline = 'top';
    for (let t = Math.ceil(x0 / xs) * xs; t <= x1 + 1e-9; t += xs) {
      const x = Math.round(X(t)) + 0.5; g.beginPath(); g.moveTo(x, T); g.lineTo(x, T + ph); g.stroke();
      const label = dur(t), half = g.measureText(label).width / 2;
      g.textAlign = x + half > W ? 'right' : x - half < 0 ? 'left' : 'center';
      g.fillText(label, g.textAlign === 'right' ? W - 1 : g.textAlign === 'left' ? 1 : x, T + ph + 4);
    }
    g.strokeStyle = '#9aa0a6'; g.strokeRect(L + 0.5, T + 0.5, pw, ph);
    // series
    g.save(); g.beginPath(); g.rect(L, T, pw, ph); g.clip();
    g.fillStyle = 'rgba(44,160,44,0.16)';   // the allowed RH band (setpoint ± band) of the steps that hold RH
    for (const b of bands) g.fillRect(X(b.t0_s), Y(b.hi), X(b.t1_s) - X(b.t0_s), Y(b.lo) - Y(b.hi));
    for (const [ch, , dashed] of p.spec.channels) {
      const s = data[ch]; if (!s || !s.t.length) continue;
      const i0 = Math.max(0, lowerBound(s.t, x0) - 1), i1 = Math.min(s.t.length, lowerBound(s.t, x1) + 1);
      g.strokeStyle = COLORS[ch] || '#000'; g.lineWidth = dashed ? 1.5 : 2; g.setLineDash(dashed ? [6, 4] : []);
      g.beginPath(); let pen = false;
      // at most ~2 points per pixel column: min and max of the samples that fall in it
      const stride = Math.max(1, Math.floor((i1 - i0) / (pw * 2)));
      for (let i = i0; i < i1; i += stride) {
        let v = s.v[i];
        if (stride > 1) { let mn = v, mx = v; for (let j = i; j < Math.min(i1, i + stride); j++) { mn = Math.min(mn, s.v[j]); mx = Math.max(mx, s.v[j]); }
          const x = X(s.t[i]); if (!pen) { g.moveTo(x, Y(mn)); pen = true; } g.lineTo(x, Y(mn)); g.lineTo(x, Y(mx)); continue; }
        if (v === null || isNaN(v)) { pen = false; continue; }
        const x = X(s.t[i]), y = Y(v);
        if (!pen) { g.moveTo(x, y); pen = true; } else g.lineTo(x, y);
      }
      g.stroke();
    }
    g.setLineDash([4, 3]); g.strokeStyle = '#c5221f'; g.lineWidth = 2;   // crash → resume gaps on the time axis
    for (const gap of (rep ? rep.gaps : [])) { const x = Math.round(X(gap.t_s)) + 0.5; g.beginPath(); g.moveTo(x, T); g.lineTo(x, T + ph); g.stroke(); }
    g.setLineDash([]); g.lineWidth = 1;
    if (p.hover !== null) { const x = X(p.hover); g.strokeStyle = '#5f6368'; g.beginPath(); g.moveTo(x, T); g.lineTo(x, T + ph); g.stroke(); }
    g.restore();
    c.dataset.points = String(nPts);
    c.dataset.lastT = lastT === null ? '' : String(lastT);
    c.dataset.x0 = String(x0); c.dataset.x1 = String(x1); c.dataset.ylo = String(lo); c.dataset.yhi = String(hi);
    p.geom = { L, pw, x0, x1 };
  }

  function attachInteraction(p) {
    const c = p.canvas;
    const tAt = (ev) => { const r = c.getBoundingClientRect(); const g = p.geom; return g.x0 + (ev.clientX - r.left - g.L) / g.pw * (g.x1 - g.x0); };
    c.addEventListener('wheel', (ev) => {
      if (!p.geom) return; ev.preventDefault();
      const [x0, x1] = xRange(), t = Math.min(x1, Math.max(x0, tAt(ev)));
      const f = ev.deltaY < 0 ? 0.8 : 1.25;
      let n0 = t - (t - x0) * f, n1 = t + (x1 - t) * f;
      if (n1 - n0 < 10) { n0 = t - 5; n1 = t + 5; }
      const [e0, e1] = extent();
      if (n0 <= e0 && n1 >= e1) { view.follow = true; } else { view.follow = false; view.x0 = n0; view.x1 = n1; }
      redraw();
    }, { passive: false });
    let drag = null;
    c.addEventListener('pointerdown', (ev) => { if (!p.geom) return; c.setPointerCapture(ev.pointerId); const [x0, x1] = xRange(); drag = { x: ev.clientX, x0, x1 }; c.style.cursor = 'grabbing'; });
    c.addEventListener('pointermove', (ev) => {
      if (p.geom) { p.hover = tAt(ev); showReadout(p, p.hover); }
      if (!drag) { draw(p); return; }
      const dt = (ev.clientX - drag.x) / p.geom.pw * (drag.x1 - drag.x0);
      view.follow = false; view.x0 = drag.x0 - dt; view.x1 = drag.x1 - dt; redraw();
    });
    const end = () => { drag = null; c.style.cursor = 'grab'; };
    c.addEventListener('pointerup', end); c.addEventListener('pointercancel', end);
    c.addEventListener('pointerleave', () => { p.hover = null; p.readout.textContent = ''; draw(p); });
    c.addEventListener('dblclick', () => { view.follow = true; redraw(); });
  }

  function showReadout(p, t) {
    const parts = ['t ' + dur(t)];
    for (const [ch, name] of p.spec.channels) {
      const s = data[ch]; if (!s || !s.t.length) continue;
      const i = Math.min(s.t.length - 1, lowerBound(s.t, t));
      parts.push(name + ' ' + num(s.v[i], 2));
    }
    p.readout.textContent = parts.join(' · ');
  }

  let pending = false;
  function redraw() { if (pending) return; pending = true; requestAnimationFrame(() => { pending = false; plots.forEach(draw); drawTimeline(); }); }
  window.addEventListener('resize', redraw);
  PLOTS.forEach(makePlot);

  // -- data in ---------------------------------------------------------------------------------------
  function addSamples(s) {
    for (const [ch, rows] of Object.entries(s.channels || {})) {
      const d = data[ch] || (data[ch] = { t: [], v: [] });
      for (const [t, v] of rows) { d.t.push(t); d.v.push(v); }
    }
    if (s.cursor) cursor = Math.max(cursor, s.cursor);
    redraw();
  }

  const events = [];
  function addEvents(list) {
    const body = $('events-body');
    for (const e of list) {
      events.push(e);
      lastEvent = Math.max(lastEvent, e.id);
      const tr = el('tr', { class: e.warning ? 'warn' : '' }, el('td', { text: dur(e.t_s) }), el('td', { text: e.kind }),
        el('td', { text: e.source }), el('td', { text: e.message }));
      body.prepend(tr);
    }
    while (body.children.length > 1000) body.lastChild.remove();
    if (list.length) redraw();
  }

  function showRun(r) {
    run = r;
    const st = $('status'); st.textContent = r.status + (r.detail ? ' — ' + r.detail : '') +
      (r.owner_stopped ? ' — its process ' + r.owner.pid + ' is STOPPED (SIGSTOP or Ctrl-Z): nothing is being controlled' : ''); st.className = 'badge ' + r.status;
    document.body.dataset.status = r.status;
    set('meta', 'recipe ' + (r.recipe || '') + ' · operator ' + (r.operator || '—') + ' · started ' + (r.started_utc || '—') +
      (r.ended_utc ? ' · ended ' + r.ended_utc : '') + (r.virtual_time ? ' · virtual time' : '') +
      (r.outcome_reason && r.status !== 'running' ? ' · ' + r.outcome_reason : '') + (r.paused_by ? ' · paused by ' + r.paused_by : ''));
    const s = r.step || {};
    set('step', s.step_index >= 0 ? (s.step_index + 1) + '/' + s.n_steps + ' ' + (s.step_type || '') : '—');
    set('step-label', s.step_label || '—');
    set('step-left', dur(r.step_left_s));
    set('run-left', (r.run_left_is_estimate && r.run_left_s ? '≥ ' : '') + dur(r.run_left_s));
    const lv = r.last_values || {}, v = (ch) => (lv[ch] ? lv[ch].value : null);
    set('rh', num(v('rh_near_pct'), 1) + ' / ' + num(r.setpoint_rh_pct, 1) + (r.band_rh_pct ? ' ± ' + r.band_rh_pct : '') + ' %RH');
    set('room', num(v('t_room_c'), 1) + ' °C / ' + num(v('rh_room_pct'), 1) + ' %RH');
    set('flows', num(v('dry_flow_slpm'), 3) + ' / ' + num(v('wet_flow_slpm'), 3));
    set('pumps', num(v('caster_infused_ml'), 3) + ' / ' + num(v('water_pump_infused_ml'), 3));
    const w = r.last_warning;
    $('warning-card').style.display = w ? '' : 'none';
    if (w) set('last-warning', dur(w.t_s) + ' ' + w.kind + ' (' + w.source + '): ' + w.message);
    const live = LIVE.includes(r.status);
    $('actions').style.display = live ? '' : 'none';
    if (!rep && r.recipe_as_written !== undefined && $('recipe').textContent === '') $('recipe').textContent = r.recipe_as_written || '(the recipe file is no longer where the run found it)';
    if (!rep) { showMembranes(r.membrane_records || []); showImages($('micrographs'), r.images || []); }
    maybeFetchReport(r);
  }

  // -- the report's part: fetched while live (when images or membranes change), inside a saved page --
  let repKey = null, repTimer = null;
  function maybeFetchReport(r) {
    if (saved) return;
    const key = JSON.stringify([(r.images || []).length, (r.membrane_records || []).map((m) => m.status), r.status]);
    if (key === repKey) return;
    repKey = key;
    clearTimeout(repTimer);
    repTimer = setTimeout(() => fetch(api + '/report').then((x) => x.json()).then(showReport).catch(() => {}), rep ? 2000 : 0);
  }

  function showReport(d) {
    if (!d || !d.run) return;
    rep = d;
    const probs = $('problems'); probs.textContent = '';
    $('problems-box').style.display = '';
    if (d.problems.length) { probs.className = 'problems'; probs.append(el('ul', {}, ...d.problems.map((t) => el('li', { text: t })))); }
    else { probs.className = 'ok'; probs.textContent = LIVE.includes((run || {}).status)
      ? 'Nothing has gone wrong so far.' : 'Nothing went wrong: the run completed and every grade judged was met.'; }
    const r = d.run;
    set('meta', 'recipe ' + r.recipe_name + ' (' + r.recipe_path + ') · profile ' + r.profile_name + ' · operator ' + (r.operator || '—') +
      ' · ' + r.wall_clock + ' · run clock ' + (r.virtual_time ? 'virtual' : 'wall') + ' (' + dur(r.t_end_s) + ')' +
      (r.seed !== null && r.seed !== undefined ? ' · seed ' + r.seed : '') + ' · castrig ' + r.software_version +
      (r.outcome_reason ? ' · ' + r.outcome_reason : ''));
    $('recipe').textContent = d.recipe_text; set('recipe-source', 'from ' + d.recipe_source);
    $('profile').textContent = d.profile_text; set('run-folder', 'run folder ' + r.run_folder);
    showMembranes(d.membranes, true);
    const box = $('membrane-sections'); box.textContent = '';
    for (const m of d.membranes) box.append(membraneSection(m));
    const other = d.other;
    $('micrographs').textContent = ''; $('micrographs').dataset.n = '';
    const hasOther = other && (other.micrographs.length || other.grades.length || other.metrics.length);
    $('micrographs-h').style.display = $('micrographs').style.display = hasOther || !d.membranes.length ? '' : 'none';
    if (other) {
      if (other.grades.length) $('micrographs').before(verdictBlock(other.grades, other.verdict_target));
      if (other.metrics.length) $('micrographs').before(metricsTable(other.metrics, other.has_truth));
      if (other.histogram) $('micrographs').before(histogramBlock(other.histogram));
      showImages($('micrographs'), other.micrographs);
    }
    redraw();
  }

  const STATUS_WORD = { pass: 'PASS', fail: 'FAIL', marginal: 'MARGINAL', unknown: 'UNKNOWN' };
  function badge(status, text) { return el('span', { class: 'badge ' + status, text: text }); }

  function showMembranes(list, full) {
    const box = $('membranes');
    const key = JSON.stringify([full, list.map((m) => [m.membrane_id, m.status, m.grades_met, m.target_met])]);
    if (box.dataset.key === key) return;
    box.dataset.key = key; box.textContent = '';
    if (!list.length) { box.append(el('p', { class: 'hint', text: full ? 'No membranes: the recipe has no cast step (or the run predates membranes).' : 'no membrane yet' })); return; }
    const heads = full ? ['membrane', 'position', 'made on', 'status', 'target', 'verdict', 'D µm', 'σd/D', 'opening', 'T µm', 'RH mean (min–max) %RH', 'out of band s', 'lot']
      : ['membrane', 'status', 'target', 'verdict'];
    const tb = el('tbody');
    for (const m of list) {
      let grades = m.grades || (m.verdict && m.verdict.grades) || [];
      if (!Array.isArray(grades)) grades = Object.entries(grades).map(([g, x]) => Object.assign({ grade: g }, x));
      const verdict = el('td', { class: 'grades' });
      for (const g of grades) {
        const st = g.status || ((m.grades_met || []).includes(g.grade) ? 'pass' : 'fail');
        verdict.append(badge(st, g.grade + ' ' + (STATUS_WORD[st] || st)), ' ');
      }
      if (!grades.length) verdict.textContent = m.lost_reason ? 'lost: ' + m.lost_reason : '—';
      const target = m.target_grade ? m.target_grade + (m.target_met ? ' met' : m.target_met === false ? ' NOT met' : '') : '—';
      const cls = m.status === 'lost' || m.target_met === false ? 'fail' : m.target_met ? 'pass' : '';
      const id = full ? el('td', {}, el('a', { href: '#m-' + m.membrane_id, text: m.membrane_id })) : el('td', { text: m.membrane_id });
      const tr = el('tr', { class: cls, 'data-membrane': m.membrane_id, 'data-status': m.status });
      if (!full) { tr.append(id, el('td', { text: m.status }), el('td', { text: target }), verdict); tb.append(tr); continue; }
      const s = m.summary || {};
      tr.append(id, el('td', { class: 'num', text: m.support_position === null ? '—' : String(m.support_position) }),
        el('td', { text: m.simulated ? 'twin (simulated)' : 'rig' }), el('td', { text: m.status + (m.status === 'lost' ? ': ' + (m.lost_reason || '') : '') }),
        el('td', { text: target }), verdict, el('td', { class: 'num', text: num(s.D_um, 3) }), el('td', { class: 'num', text: num(s.cv, 3) }),
        el('td', { class: 'num', text: num(s.opening_ratio, 3) }), el('td', { class: 'num', text: num(s.T_um, 3) }),
        el('td', { class: 'num', text: s.rh_mean_pct === null ? '—' : num(s.rh_mean_pct, 1) + ' (' + num(s.rh_min_pct, 1) + '–' + num(s.rh_max_pct, 1) + ')' }),
        el('td', { class: 'num', text: num(s.out_of_band_s, 0) }), el('td', { text: m.lot_id || '—' }));
      tb.append(tr);
    }
    box.append(el('table', { class: 'membranes' }, el('thead', {}, el('tr', {}, ...heads.map((h) => el('th', { text: h })))), tb));
  }

  function membraneSection(m) {
    const sec = el('section', { class: 'membrane', id: 'm-' + m.membrane_id, 'data-status': m.status },
      el('h3', {}, 'Membrane ' + m.membrane_id + ' — ' + m.status + ' ', m.target_grade && m.status !== 'lost'
        ? badge(m.target_met ? 'pass' : 'fail', m.target_grade + (m.target_met ? ' met' : ' NOT met')) : ''),
      el('p', { class: 'record', text: m.record }));
    if (m.status === 'lost') { sec.append(el('p', { class: 'problems', text: 'Lost: ' + (m.lost_reason || '') })); return sec; }
    sec.append(el('h4', { text: 'Verdict' }), verdictBlock(m.grades, m.target_grade || m.verdict_target));
    sec.append(el('h4', { text: 'Metrics' }), metricsTable(m.metrics, m.has_truth));
    if (m.histogram) sec.append(el('h4', { text: 'Pore sizes' }), histogramBlock(m.histogram));
    const gal = el('div', { class: 'micrographs' });
    sec.append(el('h4', { text: 'Micrographs' }), overlayKey(), gal);
    showImages(gal, m.micrographs);
    return sec;
  }

  function verdictBlock(grades, target) {
    const box = el('div', { class: 'verdict-block' });
    if (!grades.length) { box.append(el('p', { class: 'hint', text: 'No verdict recorded.' })); return box; }
    for (const g of grades) {
      const head = el('span', { class: 'grade', 'data-grade': g.grade, 'data-status': g.status }, el('b', { text: g.grade }), ' ',
        badge(g.status, STATUS_WORD[g.status] || g.status), g.description ? el('span', { class: 'hint', text: ' ' + g.description }) : '');
      const t = el('table', { class: 'verdict' }, el('thead', {}, el('tr', {}, ...['check', 'bound', 'measured', 'margin', ''].map((h) => el('th', { text: h })))));
      const tb = el('tbody');
      for (const c of g.checks) {
        tb.append(el('tr', { class: c.status }, el('td', { text: c.label }), el('td', { text: c.bound }),
          el('td', { class: 'num', text: num(c.value, 4) }), el('td', { class: 'num', text: num(c.margin, 4) }),
          el('td', {}, badge(c.status, STATUS_WORD[c.status] || c.status))));
      }
      t.append(tb);
      const d = el('details', { class: 'grade-box' }, el('summary', {}, head), t);
      if (!target || g.grade === target) d.open = true;   // the recipe's own grade open, the others folded
      box.append(d);
    }
    return box;
  }

  function metricsTable(rows, truth) {
    const heads = ['metric', 'measured'].concat(truth ? ['twin ground truth'] : []);
    const tb = el('tbody');
    for (const [name, v, t] of rows) {
      const tr = el('tr', {}, el('td', { text: name }), el('td', { class: 'num', text: typeof v === 'number' ? (Number.isInteger(v) ? String(v) : num(v, 4)) : (v === null ? '—' : String(v)) }));
  if (truth) tr.append(el('td', { class: 'num', text: Number.isInteger(t) ? String(t) : num(t, 4) }));
      tb.append(tr);
    }
    return el('table', { class: 'metrics' }, el('thead', {}, el('tr', {}, ...heads.map((h) => el('th', { text: h })))), tb);
  }

  const MARK_COLOURS = { mean: '#d62728', truth: '#2ca02c' };
  function histogramBlock(h) {
    const W = 620, H = 230, L = 48, R = 14, T = 10, B = 40, pw = W - L - R, ph = H - T - B;
    const svg = sv('svg', { class: 'hist', viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img' });
    svg.append(sv('title', {}, 'pore-size distribution, ' + h.n + ' pores'));
    const lo = h.edges[0], hi = h.edges[h.edges.length - 1], cmax = Math.max(1, ...h.counts) * 1.08;
    const X = (x) => L + (x - lo) / (hi - lo) * pw, Y = (c) => T + (1 - c / cmax) * ph;
    const ys = niceStep(cmax, 4);
    for (let c = 0; c <= cmax + 1e-9; c += ys) {
      svg.append(sv('line', { x1: L, x2: L + pw, y1: Y(c), y2: Y(c), class: 'grid' }));
      svg.append(sv('text', { x: L - 5, y: Y(c) + 4, class: 'tick', 'text-anchor': 'end' }, String(Math.round(c))));
    }
    h.counts.forEach((c, i) => { if (c) {
      const r = sv('rect', { class: 'bar', x: X(h.edges[i]) + 0.5, y: Y(c), width: Math.max(1, X(h.edges[i + 1]) - X(h.edges[i]) - 1), height: T + ph - Y(c), fill: '#1f77b4' });
      r.append(sv('title', {}, h.edges[i].toFixed(3) + '–' + h.edges[i + 1].toFixed(3) + ' µm: ' + c)); svg.append(r);
    } });
    const xs = niceStep(hi - lo, Math.max(2, Math.floor(pw / 70)));
    for (let x = Math.ceil(lo / xs) * xs; x <= hi + 1e-9; x += xs) svg.append(sv('text', { x: X(x), y: T + ph + 15, class: 'tick', 'text-anchor': 'middle' }, String(Number(x.toFixed(6)))));
    svg.append(sv('text', { x: L + pw / 2, y: H - 4, class: 'alabel', 'text-anchor': 'middle' }, 'equivalent-circle diameter (µm) · ' + h.n + ' pores'));
    svg.append(sv('rect', { x: L, y: T, width: pw, height: ph, class: 'frame' }));
    const legend = el('div', { class: 'legend hist-legend' });
    for (const m of h.marks) {   // marked values: a line on the plot, their words in the legend (never on top of each other)
      const col = MARK_COLOURS[m.kind] || '#5f6368';
      svg.append(sv('line', { x1: X(m.x), x2: X(m.x), y1: T, y2: T + ph, stroke: col, 'stroke-width': 2, 'stroke-dasharray': m.kind === 'truth' ? '2 3' : '6 3', class: 'mark' }));
      legend.append(el('span', {}, el('i', { style: 'background:' + col }), m.label));
    }
    return el('div', { class: 'plot hist-box' }, svg, legend);
  }

  function overlayKey() {
    const k = (c, t) => el('span', {}, el('i', { style: 'background:' + c }), t);
    return el('div', { class: 'legend overlay-key' }, el('b', { text: 'outlines' }), k('#00c853', 'measured pore'), k('#ff9100', 'cut by the border (opening ratio only)'),
      k('#00b8ff', 'through-pore / support interface'), k('#ff4081', 'section: upper envelope'));
  }

  function drawTimeline() {
    const box = $('timeline'); if (!box) return;
    const steps = rep ? rep.steps : [], gaps = rep ? rep.gaps : [];
    $('timeline-box').style.display = steps.length ? '' : 'none';
    if (!steps.length) return;
    const W = box.clientWidth; if (!W) return;
    const L = 52, R = 10, rowH = 16, rows = steps.length + gaps.length;
    const H = 8 + rows * rowH + 14 + 22, pw = W - L - R;
    const [x0, x1] = xRange(), X = (t) => L + (t - x0) / (x1 - x0) * pw;
    const svg = sv('svg', { id: 'timeline-svg', width: W, height: H, viewBox: '0 0 ' + W + ' ' + H });
    const clip = sv('clipPath', { id: 'tl-clip' }); clip.append(sv('rect', { x: L, y: 0, width: pw, height: H })); svg.append(clip);
    const COL = ['#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#7f7f7f'];
    const items = steps.map((s, i) => ({ t0: s.t0_s, t1: s.t1_s === null ? (rep.run.t_end_s) : s.t1_s,
      label: s.label + (s.t1_s === null ? ' (not finished)' : (s.cut ? ' (cut short: membrane lost)' : '')),
      colour: s.t1_s === null || s.cut ? '#c5221f' : COL[i % COL.length], cls: 'step' }))
      .concat(gaps.map((g) => ({ t0: g.t_s, t1: g.t_s, label: g.label, colour: '#c5221f', cls: 'gap' })))
      .sort((a, b) => a.t0 - b.t0);
    items.forEach((it, i) => {   // one row per step: labels never share a row, so they never overlap
      const y = 8 + i * rowH, a = X(it.t0), b = Math.max(X(it.t1), a + 2);
      const r = sv('rect', { class: it.cls, x: a, y: y + 2, width: b - a, height: rowH - 5, fill: it.colour, 'fill-opacity': 0.8, 'clip-path': 'url(#tl-clip)' });
      r.append(sv('title', {}, it.label + ': ' + dur(it.t0) + '–' + dur(it.t1))); svg.append(r);
      const t = sv('text', { class: 'tl-label', y: y + rowH - 4 }, it.label);
      svg.append(t);
      const w = t.getComputedTextLength ? t.getComputedTextLength() : it.label.length * 6;
      // right of the bar if it fits, else left of it, else at the right edge of the axis
      let x = b + 4, anchor = 'start';
      if (x + w > L + pw) { x = a - 4; anchor = 'end'; }
      if (anchor === 'end' && x - w < L) { x = L + pw; anchor = 'end'; }
      t.setAttribute('x', Math.max(L + (anchor === 'start' ? 0 : w), Math.min(x, L + pw))); t.setAttribute('text-anchor', anchor);
    });
    const ym = 8 + rows * rowH + 2, kinds = new Set(rep.problem_kinds);
    for (const e of events) {
      if (e.t_s < x0 || e.t_s > x1) continue;
      const bad = e.warning || kinds.has(e.kind), x = X(e.t_s);
      const ln = sv('line', { class: 'mark', x1: x, x2: x, y1: ym, y2: ym + (bad ? 12 : 7), stroke: bad ? '#c5221f' : '#9aa0a6', 'stroke-width': bad ? 2 : 1 });
      ln.append(sv('title', {}, dur(e.t_s) + ' ' + e.kind + ': ' + e.message)); svg.append(ln);
    }
    const ya = ym + 14;
    svg.append(sv('line', { x1: L, x2: L + pw, y1: ya, y2: ya, class: 'axis' }));
    const xs = niceStep(x1 - x0, Math.max(2, Math.floor(pw / 90)), TSTEPS);
    for (let t = Math.ceil(x0 / xs) * xs; t <= x1 + 1e-9; t += xs) svg.append(sv('text', { x: X(t), y: ya + 14, class: 'tick', 'text-anchor': 'middle' }, dur(t)));
    box.textContent = ''; box.append(svg);
    // tick labels at the ends stay inside
    for (const t of svg.querySelectorAll('text.tick')) { const bb = t.getBBox(); if (bb.x + bb.width > W) t.setAttribute('text-anchor', 'end'); if (bb.x < 0) t.setAttribute('text-anchor', 'start'); }
  }

  function niceLength(um) { const p = Math.pow(10, Math.floor(Math.log10(um))); for (const f of [5, 2, 1]) if (f * p <= um) return f * p; return p; }
  function placeScalebar(fig, im) {   // a scale bar ≈ a fifth of the shown width, in µm
    const img = fig.querySelector('img.raw'); if (!img || !img.clientWidth || !im.pixel_size_um) return;
    const fullW = im.width_px || img.naturalWidth;
    const umPerShownPx = im.pixel_size_um * fullW / img.clientWidth;
    const um = niceLength(img.clientWidth * umPerShownPx / 5);
    let bar = fig.querySelector('.scalebar');
    if (!bar) { bar = el('div', { class: 'scalebar' }, el('span')); fig.querySelector('.frame').append(bar); }
    bar.style.width = (um / umPerShownPx) + 'px';
    bar.firstChild.textContent = (um >= 1 ? um : um.toPrecision(2)) + ' µm';
  }
  const resizer = window.ResizeObserver ? new ResizeObserver((entries) => { for (const e of entries) if (e.target.__im) placeScalebar(e.target, e.target.__im); }) : null;

  function showImages(box, list) {
    const key = JSON.stringify(list.map((im) => [im.id, !!im.overlay]));
    if (box.dataset.n === key) return;
    box.dataset.n = key; box.textContent = '';
    if (!list.length) { box.append(el('p', { class: 'hint', text: rep ? 'no micrographs' : 'no micrograph yet' })); return; }
    for (const im of list) {
      const src = im.src || (saved && saved.images ? saved.images[String(im.id)] : '/runs/' + encodeURIComponent(uid) + '/images/' + im.id + '.png');
      if (!src) continue;
      const wide = (im.width_px || 1) > 2 * (im.height_px || 1);
      const img = el('img', { class: 'raw', src: src, alt: im.name });
      const frame = el('div', { class: 'frame', title: 'click: larger / smaller' }, img);
      if (im.overlay) frame.append(el('img', { class: 'overlay', src: im.overlay, alt: im.name + ' segmentation' }));
      const fig = el('figure', { class: 'micrograph' + (wide ? ' wide' : ''), 'data-illumination': im.illumination }, frame,
        el('figcaption', {}, el('b', { text: im.name }), ' · ' + im.illumination + ' · ' + im.pixel_size_um + ' µm/px' +
          (im.width_px ? ' · ' + im.width_px + '×' + im.height_px + ' px' : '') + (im.t_s !== undefined && im.t_s !== null ? ' · t ' + dur(im.t_s) : ''),
          im.caption ? el('br') : '', im.caption || ''));
      if (im.overlay) {
        const cb = el('input', { type: 'checkbox' }); cb.checked = true;
        cb.addEventListener('change', () => fig.classList.toggle('no-overlay', !cb.checked));
        fig.append(el('label', { class: 'hint' }, cb, ' outlines'));
      }
      frame.addEventListener('click', () => { fig.classList.toggle('large'); placeScalebar(fig, im); });
      fig.__im = im;
      img.addEventListener('load', () => placeScalebar(fig, im));
      if (resizer) resizer.observe(fig);
      box.append(fig);
    }
  }

  // -- operator actions --------------------------------------------------------------------------------
  for (const action of ['pause', 'resume', 'abort']) {
    $('btn-' + action).addEventListener('click', async () => {
      if (action === 'abort' && !window.confirmSkip && !window.confirm('Abort this run? The rig goes to the safe state.')) return;
      const tok = $('token').value.trim();
      const msg = $('action-msg');
      msg.textContent = action + '…'; msg.className = '';
      try {
        const r = await fetch(api + '/' + action, { method: 'POST', headers: tok ? { Authorization: 'Bearer ' + tok } : {} });
        const body = await r.json().catch(() => ({}));
        msg.textContent = r.status + ': ' + (body.message || body.error || '');
        msg.className = r.ok ? 'ok' : 'err';
        msg.dataset.code = String(r.status);
      } catch (e) { msg.textContent = 'failed: ' + e; msg.className = 'err'; }
    });
  }

  // -- start: everything so far, then follow -----------------------------------------------------------
  // a saved report carries its data (and its micrographs as data URIs) inside the page
  const embedded = document.getElementById('castrig-data');
  const saved = embedded ? JSON.parse(embedded.textContent) : null;

  async function start() {
    if (saved) {
      rep = saved.report || null; addSamples(saved.samples); addEvents(saved.events); showRun(saved.run); if (saved.report) showReport(saved.report);
      $('actions').style.display = 'none'; $('save-link').style.display = 'none'; document.body.dataset.ended = '1'; return;
    }
    const [s, ev, r] = await Promise.all([fetch(api + '/samples').then((x) => x.json()), fetch(api + '/events').then((x) => x.json()),
      fetch(api).then((x) => x.json())]);
    addSamples(s); addEvents(ev); showRun(r);
    if (!LIVE.includes(r.status)) { document.body.dataset.ended = '1'; return; }
    // (the report's part arrives by itself: showRun asks for it when images or membranes change)
    const es = new EventSource(api + '/stream?after=' + cursor + '&events_after=' + lastEvent);
    es.onmessage = (m) => { const d = JSON.parse(m.data); addSamples(d.samples); addEvents(d.events); showRun(d.run); document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1); };
    es.addEventListener('end', () => { es.close(); document.body.dataset.ended = '1'; });
  }
  start().catch((e) => { set('meta', 'cannot read the run: ' + e); });
})();
