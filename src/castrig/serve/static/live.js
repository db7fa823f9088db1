// castrig serve: the live run page (and, once the run has ended, its report).
// Data comes from the JSON API and a server-sent event stream that castrig feeds from the run's
// SQLite as the runner writes it. Everything from files is put in the page as text (never HTML).
// Plots are drawn here on <canvas>: wheel zooms the time axis, drag pans, double-click shows the
// whole run again (an 8-hour trace is readable at the minute scale). No library, no CDN.
(function () {
  'use strict';
  const root = document.getElementById('run');
  const uid = root.dataset.uid;
  const api = '/api/runs/' + encodeURIComponent(uid);
  const data = {};            // channel -> {t: [], v: []}
  let cursor = 0, lastEvent = 0, run = null;
  const view = { follow: true, x0: 0, x1: 1 };
  const plots = [];

  // -- helpers ---------------------------------------------------------------------------------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
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
    el('h2', { text: 'Membranes' }), el('div', { id: 'membranes' }),
    el('h2', { text: 'Micrographs' }), el('div', { id: 'micrographs', class: 'micrographs' }),
    el('h2', { text: 'Event log' }),
    el('table', { id: 'events' }, el('thead', {}, el('tr', {}, el('th', { text: 't (run)' }), el('th', { text: 'kind' }),
      el('th', { text: 'source' }), el('th', { text: 'message' }))), el('tbody', { id: 'events-body' })),
    el('h2', { text: 'Recipe (as written)' }), el('pre', { id: 'recipe' }),
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
    g.setLineDash([]);
    if (p.hover !== null) { const x = X(p.hover); g.strokeStyle = '#5f6368'; g.beginPath(); g.moveTo(x, T); g.lineTo(x, T + ph); g.stroke(); }
    g.restore();
    c.dataset.points = String(nPts);
    c.dataset.lastT = lastT === null ? '' : String(lastT);
    c.dataset.x0 = String(x0); c.dataset.x1 = String(x1);
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
  function redraw() { if (pending) return; pending = true; requestAnimationFrame(() => { pending = false; plots.forEach(draw); }); }
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

  function addEvents(list) {
    const body = $('events-body');
    for (const e of list) {
      lastEvent = Math.max(lastEvent, e.id);
      const tr = el('tr', { class: e.warning ? 'warn' : '' }, el('td', { text: dur(e.t_s) }), el('td', { text: e.kind }),
        el('td', { text: e.source }), el('td', { text: e.message }));
      body.prepend(tr);
    }
    while (body.children.length > 1000) body.lastChild.remove();
  }

  function showRun(r) {
    run = r;
    const st = $('status'); st.textContent = r.status; st.className = 'badge ' + r.status;
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
    const live = ['running', 'paused', 'pausing'].includes(r.status);
    $('actions').style.display = live ? '' : 'none';
    if (r.recipe_as_written !== undefined && $('recipe').textContent === '') $('recipe').textContent = r.recipe_as_written || '(the recipe file is no longer where the run found it)';
    showMembranes(r.membrane_records || []);
    showImages(r.images || []);
  }

  function showMembranes(list) {
    const box = $('membranes');
    const key = JSON.stringify(list);
    if (box.dataset.key === key) return;
    box.dataset.key = key; box.textContent = '';
    if (!list.length) { box.append(el('p', { class: 'hint', text: 'no membrane yet' })); return; }
    const tb = el('tbody');
    for (const m of list) {
      const verdict = el('td');
      // a verdict lists its grades ([{grade, status, checks}], or {grade: {checks}} in older runs)
      let grades = (m.verdict && m.verdict.grades) || [];
      if (!Array.isArray(grades)) grades = Object.entries(grades).map(([g, r]) => Object.assign({ grade: g }, r));
      for (const res of grades) {
        const g = res.grade, ok = (m.grades_met || []).includes(g);
        const st = res.status || (ok ? 'pass' : 'fail');
        const d = el('details', {}, el('summary', {}, el('span', { class: 'badge ' + st, text: g + ' ' + st.toUpperCase() })));
        const t = el('table');
        for (const c of res.checks || []) {
          const pass = c.status || (c.pass === true ? 'pass' : c.pass === false ? 'fail' : 'unknown');
          const bound = c.kind ? (c.kind === 'min' ? '≥ ' : c.kind === 'max' ? '≤ ' : c.kind + ' ') + c.limit : JSON.stringify(c.bound);
          t.append(el('tr', {}, el('td', { text: c.label || c.metric || c.quantity }), el('td', { text: bound }),
            el('td', { text: num(c.value !== undefined ? c.value : c.measured, 3) }), el('td', {}, el('span', { class: 'badge ' + pass, text: pass }))));
        }
        d.append(t); verdict.append(d);
      }
      if (!grades.length) verdict.textContent = m.lost_reason ? 'lost: ' + m.lost_reason : '—';
      tb.append(el('tr', {}, el('td', { text: m.membrane_id }), el('td', { text: m.status }),
        el('td', { text: (m.grades_met || []).join(', ') || '—' }),
        el('td', { text: m.target_grade ? m.target_grade + (m.target_met ? ' met' : m.target_met === false ? ' NOT met' : '') : '—' }), verdict));
    }
    box.append(el('table', {}, el('thead', {}, el('tr', {}, ...['membrane', 'status', 'grades met', 'target', 'verdict'].map((h) => el('th', { text: h })))), tb));
  }

  function niceLength(um) { const p = Math.pow(10, Math.floor(Math.log10(um))); for (const f of [5, 2, 1]) if (f * p <= um) return f * p; return p; }
  function showImages(list) {
    const box = $('micrographs');
    if (box.dataset.n === String(list.length)) return;
    box.dataset.n = String(list.length); box.textContent = '';
    if (!list.length) { box.append(el('p', { class: 'hint', text: 'no micrograph yet' })); return; }
    for (const im of list) {
      const src = saved ? saved.images[String(im.id)] : '/runs/' + encodeURIComponent(uid) + '/images/' + im.id + '.png';
      if (!src) continue;
      const img = el('img', { src: src, alt: im.name, loading: 'lazy' });
      const fig = el('figure', {}, img, el('figcaption', { text: im.name + ' · ' + im.illumination + (im.membrane_id ? ' · ' + im.membrane_id : '') + ' · ' + im.pixel_size_um + ' µm/px' }));
      img.addEventListener('load', () => {   // a scale bar ≈ a fifth of the width, in µm
        const fullPx = Math.max(im.width_px || img.naturalWidth, im.height_px || img.naturalHeight);
        const step = Math.max(1, Math.ceil(fullPx / 1024));
        const umPerShownPx = im.pixel_size_um * step * img.naturalWidth / img.clientWidth;
        const um = niceLength(img.clientWidth * umPerShownPx / 5);
        const bar = el('div', { class: 'scalebar', style: 'width:' + (um / umPerShownPx) + 'px;top:' + (img.clientHeight - 24) + 'px' }, el('span', { text: um + ' µm' }));
        fig.append(bar);
      });
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
      addSamples(saved.samples); addEvents(saved.events); showRun(saved.run);
      $('actions').style.display = 'none'; $('save-link').style.display = 'none'; document.body.dataset.ended = '1'; return;
    }
    const [s, ev, r] = await Promise.all([fetch(api + '/samples').then((x) => x.json()), fetch(api + '/events').then((x) => x.json()),
      fetch(api).then((x) => x.json())]);
    addSamples(s); addEvents(ev); showRun(r);
    if (!['running', 'paused', 'pausing'].includes(r.status)) { document.body.dataset.ended = '1'; return; }
    const es = new EventSource(api + '/stream?after=' + cursor + '&events_after=' + lastEvent);
    es.onmessage = (m) => { const d = JSON.parse(m.data); addSamples(d.samples); addEvents(d.events); showRun(d.run); document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1); };
    es.addEventListener('end', () => { es.close(); document.body.dataset.ended = '1'; });
  }
  start().catch((e) => { set('meta', 'cannot read the run: ' + e); });
})();
