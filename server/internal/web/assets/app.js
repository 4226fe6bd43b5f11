// The QA page: a view over the admin API (/sandbox/v1). Every click is one
// of its JSON calls, so anything done here can be done with curl. Plain
// JavaScript, no build step, no external assets; text only through
// textContent, never innerHTML, because every value shown comes from
// merchants' requests.
'use strict';
(() => {
  const DICT = JSON.parse(document.getElementById('i18n').textContent);
  // The products this server runs, in its order: GET /sandbox/v1/products.
  let PRODUCTS = [];
  const VIEWS = ['overview', 'scenarios', 'sessions', 'parking', 'journal', 'notifications', 'report'];
  // The report's windows: a duration before now, or the whole journal.
  const REPORT_WINDOWS = ['1h', '24h', '168h', ''];
  // The journal keeps this many rows: the page may stay open for days.
  const JOURNAL_CAP = 500;
  const ADVANCES = ['1m', '5m', '15m', '1h', '24h'];
  const KEY_LANG = 'mpsandbox.lang';
  const KEY_TOKEN = 'mpsandbox.token';
  const KEY_MCHID = 'mpsandbox.mchid';

  // ---- storage that may be refused (private modes, file://)
  const storage = (area) => ({
    get(k) { try { return window[area].getItem(k); } catch { return null; } },
    set(k, v) { try { if (v === null || v === '') window[area].removeItem(k); else window[area].setItem(k, v); } catch { /* keep it in memory only */ } },
  });
  const local = storage('localStorage');
  const session = storage('sessionStorage');

  // ---- words
  let lang = (() => {
    const q = new URLSearchParams(location.search).get('lang');
    if (q === 'zh' || q === 'en') { local.set(KEY_LANG, q); return q; }
    return local.get(KEY_LANG) === 'en' ? 'en' : 'zh';
  })();

  function t(key, vars) {
    let s = DICT[lang]?.[key] ?? DICT.zh[key] ?? key;
    if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
    return s;
  }
  // tOr is t for keys made from data (an action, a fault): the raw word
  // when the dictionary does not know it.
  function tOr(key, fallback) {
    return DICT[lang]?.[key] ?? DICT.zh[key] ?? fallback;
  }
  const productName = (p) => tOr('product.' + p, p);
  const actionName = (product, a) => tOr('action.' + product + '.' + a, a);

  // ---- DOM
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'data') for (const [dk, dv] of Object.entries(v)) { if (dv !== undefined && dv !== null) el.dataset[dk] = dv; }
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === undefined || kid === null || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const main = () => $('#main');

  function toast(text, bad) {
    const el = $('#toast');
    el.textContent = text;
    el.className = 'toast' + (bad ? ' bad' : '');
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, bad ? 6000 : 1800);
  }

  function applyWords() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    for (const el of $$('[data-i18n]')) el.textContent = t(el.dataset.i18n);
    for (const b of $$('[data-lang]')) b.classList.toggle('on', b.dataset.lang === lang);
  }

  // ---- time
  const locale = () => (lang === 'zh' ? 'zh-CN' : 'en-GB');
  function fmtTime(iso, withDate) {
    if (!iso || iso.startsWith('0001-')) return '—';
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    const opts = { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false };
    if (withDate) Object.assign(opts, { year: 'numeric', month: '2-digit', day: '2-digit' });
    return d.toLocaleString(locale(), opts);
  }
  function fmtClock(ms) {
    const d = new Date(ms);
    return d.toLocaleString(locale(), { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  }

  // ---- access: off loopback every admin call needs a token. ?token= in
  // the first URL is kept for this tab only and taken out of the address
  // bar, so it is neither bookmarked nor shown on screen.
  let token = (() => {
    const u = new URL(location.href);
    const q = u.searchParams.get('token');
    if (q) {
      session.set(KEY_TOKEN, q);
      u.searchParams.delete('token');
      history.replaceState(null, '', u.pathname + u.search + u.hash);
      return q;
    }
    return session.get(KEY_TOKEN) || '';
  })();

  class APIError extends Error {
    constructor(status, body, text) {
      const e = body && body.error;
      super(e ? e.message : (text || 'HTTP ' + status));
      this.status = status;
      this.fields = (e && e.fields) || [];
    }
    describe() {
      return [this.message, ...this.fields.map((f) => (f.path ? f.path + ': ' : '') + (f.issue || f.message || ''))].join('\n');
    }
  }

  async function api(method, path, body) {
    // X-Requested-With: the admin API refuses a state-changing call
    // without it or a JSON body (a page of another site cannot send either).
    const headers = { Accept: 'application/json', 'X-Requested-With': 'mpsandbox-qa' };
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, { method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new APIError(0, null, t('error.network'));
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: keep the text */ }
    if (res.status === 401) {
      askToken(!!token);
      throw new APIError(401, data, text);
    }
    if (!res.ok) throw new APIError(res.status, data, text);
    return data;
  }

  // report shows a failed call; a 401 has already turned into the prompt.
  function report(err) {
    if (err instanceof APIError && err.status === 401) return;
    toast(err instanceof APIError ? err.describe() : String(err), true);
  }

  // ---- state
  const S = {
    view: 'overview',
    sub: '',
    gen: 0,
    merchants: [],
    mchid: '',
    clock: null, // {mchid, base: ms, at: ms, scale, offset}
    creds: {},
    revealed: new Set(),
    scenarios: {},
    journal: [],
    seen: new Set(),
    jf: { product: '', mchid: '', session_id: '', direction: '' },
    newest: 0,
    es: null,
    detail: null,
    expanded: new Set(),
    refreshTimer: 0,
    locked: false,
    reportSince: '24h',
  };
  const merchant = () => S.merchants.find((m) => m.mchid === S.mchid);
  const enc = encodeURIComponent;

  // ---- the token prompt: nothing but a form; no data is fetched until a
  // token is accepted.
  function askToken(rejected) {
    S.locked = true;
    stopLive();
    S.gen++;
    document.body.dataset.auth = 'needed';
    $('#tabs').hidden = true;
    $('.pick-merchant').hidden = true;
    $('#live').hidden = true;
    $('#signout').hidden = !token;
    closeDetail();
    const input = h('input', { id: 'token-input', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true,
      placeholder: t('token.placeholder'), 'aria-label': t('token.placeholder') });
    const form = h('form', { id: 'token-prompt', class: 'card prompt', onsubmit: (ev) => {
      ev.preventDefault();
      token = input.value.trim();
      session.set(KEY_TOKEN, token);
      S.locked = false;
      delete document.body.dataset.auth;
      boot();
    } },
    h('h1', { text: t('token.title') }),
    h('p', { text: t('token.why') }),
    rejected ? h('p', { class: 'bad', text: t('token.rejected') }) : null,
    h('div', { class: 'row' }, input, h('button', { type: 'submit', class: 'primary', text: t('token.enter') })),
    h('p', { class: 'muted', text: t('token.where') }));
    main().replaceChildren(form);
    input.focus();
  }

  function signOut() {
    token = '';
    session.set(KEY_TOKEN, null);
    askToken(false);
  }

  // ---- live journal: one EventSource, filtered like the journal view.
  // EventSource cannot send headers, so the token rides in ?token=; the
  // browser resumes with Last-Event-ID after a drop.
  function startLive() {
    stopLive();
    const q = journalQuery();
    q.set('after', String(S.newest));
    if (token) q.set('token', token);
    const es = new EventSource('/sandbox/v1/journal/stream?' + q.toString());
    S.es = es;
    es.onopen = () => setLive(true);
    es.onerror = () => {
      setLive(false);
      // A closed stream is a refusal (a 401 after the token was revoked):
      // find out with an ordinary call, which shows the prompt.
      if (es.readyState === EventSource.CLOSED && S.es === es) api('GET', '/sandbox/v1/merchants').catch(report);
    };
    es.addEventListener('exchange', (ev) => {
      let x;
      try { x = JSON.parse(ev.data); } catch { return; }
      onExchange(x);
    });
  }
  function stopLive() {
    if (S.es) S.es.close();
    S.es = null;
    setLive(false);
  }
  function setLive(on) {
    const el = $('#live');
    el.classList.toggle('on', on);
    el.lastElementChild.textContent = t(on ? 'live.on' : 'live.off');
    el.lastElementChild.dataset.i18n = on ? 'live.on' : 'live.off';
    document.body.dataset.live = on ? 'on' : 'off';
  }

  function onExchange(x) {
    if (S.seen.has(x.id)) return;
    S.newest = Math.max(S.newest, x.id);
    addExchange(x, true);
    if (S.view === 'journal') {
      const list = $('#journal-list');
      if (list) {
        $('.empty', list)?.remove();
        list.prepend(journalRow(x, true));
        while (list.children.length > JOURNAL_CAP) list.lastElementChild.remove();
      }
    }
    // Sessions and notifications change with what the journal sees.
    if (S.view === 'sessions' || S.view === 'parking' || S.view === 'notifications' || S.view === 'overview') refreshSoon();
  }
  // refreshSoon redraws the view once a burst of events is over, and not
  // while someone is typing in it.
  function refreshSoon() {
    clearTimeout(S.refreshTimer);
    S.refreshTimer = setTimeout(() => {
      const f = document.activeElement;
      if (f && main().contains(f) && /^(INPUT|SELECT|TEXTAREA)$/.test(f.tagName)) refreshSoon();
      else render(true);
    }, 400);
  }
  function addExchange(x, front) {
    if (S.seen.has(x.id)) return;
    S.seen.add(x.id);
    if (front) S.journal.unshift(x); else S.journal.push(x);
    while (S.journal.length > JOURNAL_CAP) S.seen.delete(S.journal.pop().id);
  }
  function journalQuery() {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(S.jf)) if (v) q.set(k, v);
    return q;
  }

  // ---- boot and routing
  // The detail panel starts below the header, whose height wraps with the
  // width.
  function measureHeader() {
    document.documentElement.style.setProperty('--header-h', $('.top').offsetHeight + 'px');
  }
  window.addEventListener('resize', measureHeader);

  function boot() {
    applyWords();
    measureHeader();
    const act = location.pathname.match(/^\/act\/([^/]+)\/?$/);
    if (act) {
      document.body.classList.add('act-page');
      startAct(decodeURIComponent(act[1]));
      return;
    }
    start();
  }

  async function start() {
    main().replaceChildren(h('p', { class: 'empty', text: t('loading') }));
    try {
      await loadMerchants();
      PRODUCTS = (await api('GET', '/sandbox/v1/products')).products.map((p) => p.name);
      // The stream starts after the newest entry of any kind, so nothing
      // written while the journal loads is missed (what arrives twice is
      // skipped by id).
      const newest = await api('GET', '/sandbox/v1/journal?limit=1');
      S.newest = newest.exchanges.length ? newest.exchanges[0].id : 0;
      await loadJournal();
    } catch (err) {
      report(err);
      return;
    }
    if (S.locked) return;
    $('#tabs').hidden = false;
    $('.pick-merchant').hidden = false;
    $('#live').hidden = false;
    $('#signout').hidden = !token;
    startLive();
    route();
  }

  async function loadMerchants() {
    const out = await api('GET', '/sandbox/v1/merchants');
    S.merchants = out.merchants;
    const saved = local.get(KEY_MCHID);
    S.mchid = S.merchants.some((m) => m.mchid === S.mchid) ? S.mchid
      : S.merchants.some((m) => m.mchid === saved) ? saved
        : (S.merchants[0]?.mchid || '');
    const sel = $('#merchant');
    sel.replaceChildren(...S.merchants.map((m) => h('option', { value: m.mchid, text: m.mchid + ' · ' + m.name })));
    sel.value = S.mchid;
    const m = merchant();
    if (m) setClock(m.clock);
  }

  function route() {
    const [view, sub] = location.hash.replace(/^#/, '').split('/');
    S.view = VIEWS.includes(view) ? view : 'overview';
    S.sub = sub ? decodeURIComponent(sub) : '';
    for (const a of $$('#tabs a')) a.classList.toggle('on', a.dataset.view === S.view);
    document.body.dataset.view = S.view;
    render(false);
    // #journal/{id} opens that exchange: the report's evidence links.
    if (S.view === 'journal' && /^\d+$/.test(S.sub)) openExchange(S.sub);
  }

  // render draws the current view; quiet is a refresh after live events,
  // which keeps the scroll position and shows no loading line.
  function render(quiet) {
    if (S.locked) return;
    const gen = ++S.gen;
    const views = { overview: viewOverview, scenarios: viewScenarios, sessions: viewSessions, parking: viewParking, journal: viewJournal, notifications: viewNotifications, report: viewReport };
    if (!quiet) main().replaceChildren(h('p', { class: 'empty', text: t('loading') }));
    const y = window.scrollY;
    views[S.view](gen).then((nodes) => {
      if (gen !== S.gen || !nodes) return;
      main().replaceChildren(...[nodes].flat(Infinity).filter(Boolean));
      if (quiet) window.scrollTo(0, y);
    }).catch(report);
  }
  const current = (gen) => gen === S.gen;

  // ---- shared pieces
  function copyButton(getText, label) {
    return h('button', { type: 'button', class: 'small', onclick: () => copy(getText()), text: label || t('copy') });
  }
  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // navigator.clipboard exists only in secure contexts; a sandbox on a
      // LAN address is plain http.
      const ta = h('textarea', { class: 'offscreen', readonly: true });
      ta.value = text;
      document.body.append(ta);
      ta.select();
      document.execCommand('copy');
      ta.remove();
    }
    toast(t('copied'));
  }
  function badge(text, kind, title) { return h('span', { class: 'badge ' + (kind || ''), text, title }); }
  function section(titleKey, ...body) {
    return h('section', { class: 'card' }, h('h2', { text: t(titleKey) }), ...body);
  }
  // statusBadge shows an HTTP status; none (the attempt got no answer) is
  // a cross where space is short, with the words as its title.
  function statusBadge(status, short) {
    if (!status) return badge(short ? '✕' : t('status.none'), 'bad', t('status.none'));
    return badge(String(status), status < 300 ? 'ok' : status < 500 ? 'warn' : 'bad');
  }
  function kv(pairs) {
    return h('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) =>
      [h('dt', { text: t(k) }), h('dd', {}, v instanceof Node ? v : String(v))]));
  }
  // pretty shows a body as it is best read: indented JSON, a form as one
  // field per line, anything else as it came.
  function pretty(body) {
    if (body === undefined || body === null || body === '') return '';
    if (typeof body !== 'string') return JSON.stringify(body, null, 2);
    const s = body.trim();
    if (s.startsWith('{') || s.startsWith('[')) {
      try { return JSON.stringify(JSON.parse(s), null, 2); } catch { /* not JSON after all */ }
    }
    if (/^[\w.%-]+=[^\s]*(&[\w.%-]+=[^\s]*)*$/.test(s)) {
      try {
        return Array.from(new URLSearchParams(s)).map(([k, v]) => k + ' = ' + v).join('\n');
      } catch { /* not a form */ }
    }
    return body;
  }
  function codeBlock(titleKey, text) {
    if (!text) return null;
    return h('div', { class: 'block' },
      h('div', { class: 'block-head' }, h('h3', { text: t(titleKey) }), copyButton(() => text)),
      h('pre', { class: 'code', text }));
  }

  // ---- the clock, ticking locally between fetches
  function setClock(c) {
    S.clock = { mchid: c.mchid, base: Date.parse(c.now), at: Date.now(), scale: c.scale, offset: c.offset };
    tickClock();
  }
  function clockNow() { return S.clock ? S.clock.base + (Date.now() - S.clock.at) * S.clock.scale : Date.now(); }
  function tickClock() {
    for (const el of $$('[data-clock-now]')) el.textContent = fmtClock(clockNow());
    for (const el of $$('[data-clock-offset]')) el.textContent = S.clock ? S.clock.offset : '';
  }
  setInterval(tickClock, 1000);

  function clockBar() {
    const custom = h('input', { class: 'short', placeholder: '90s', 'aria-label': t('clock.custom'), pattern: '([0-9]+(\\.[0-9]+)?(ms|s|m|h))+' });
    const advance = async (by) => {
      if (!S.mchid || !by) return;
      try {
        setClock(await api('POST', '/sandbox/v1/clock/advance', { mchid: S.mchid, by }));
        toast(t('clock.advanced', { by }));
      } catch (err) { report(err); }
    };
    return h('div', { class: 'clock', id: 'clock' },
      h('div', { class: 'clock-read' },
        h('span', { class: 'muted', text: t('clock.now') }),
        h('strong', { data: { clockNow: '' }, text: fmtClock(clockNow()) }),
        h('span', { class: 'muted' }, t('clock.offset'), ' ', h('span', { data: { clockOffset: '' }, text: S.clock?.offset || '0s' }),
          S.clock && S.clock.scale !== 1 ? ' · ×' + S.clock.scale : '')),
      h('div', { class: 'clock-buttons' },
        ADVANCES.map((by) => h('button', { type: 'button', class: 'small', data: { advance: by }, onclick: () => advance(by), text: '+' + t('dur.' + by) })),
        h('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); advance(custom.value.trim()); } },
          custom, h('button', { type: 'submit', class: 'small', text: t('clock.advance') }))));
  }

  // ---- overview: merchants, credentials, products, clock
  const CREDS = [
    // [field, secret, long]
    ['mchid'], ['appid'], ['service_id'], ['merchant_serial_no'],
    ['merchant_private_key_pem', true, true], ['merchant_certificate_pem', false, true], ['merchant_public_key_pem', false, true],
    ['api_v2_key', true], ['api_v3_key', true],
    ['platform_public_key_id'], ['platform_public_key_pem', false, true], ['platform_serial_no'], ['platform_certificate_pem', false, true],
    ['pcloud_app_id'], ['pcloud_merchant'], ['pcloud_app_secret', true],
    ['merchant_token', true],
  ];

  async function viewOverview(gen) {
    const m = merchant();
    if (!m) return h('p', { class: 'empty', text: t('merchants.none') });
    const [clock, active, creds] = await Promise.all([
      api('GET', '/sandbox/v1/clock?mchid=' + enc(m.mchid)),
      api('GET', '/sandbox/v1/merchants/' + enc(m.mchid) + '/scenarios'),
      S.creds[m.mchid] ? Promise.resolve(S.creds[m.mchid]) : api('GET', '/sandbox/v1/merchants/' + enc(m.mchid) + '/credentials'),
    ]);
    if (!current(gen)) return null;
    setClock(clock);
    S.creds[m.mchid] = creds;

    const merchants = section('merchants.title', h('div', { class: 'list' }, S.merchants.map((x) =>
      h('button', { type: 'button', class: 'merchant' + (x.mchid === S.mchid ? ' on' : ''), data: { mchid: x.mchid }, onclick: () => pickMerchant(x.mchid) },
        h('strong', { text: x.name }),
        h('span', { class: 'mono', text: x.mchid }),
        h('span', { class: 'muted' }, 'appid ', h('span', { class: 'mono', text: x.appid }))))));

    const products = section('products.title', h('div', { class: 'products' }, PRODUCTS.map((p) => {
      const a = active.products[p] || {};
      return h('a', { class: 'product', href: '#scenarios/' + p, data: { product: p } },
        h('strong', { text: productName(p) }),
        h('span', { class: 'muted', text: t('product.' + p + '.what') }),
        h('span', {}, a.active ? badge(t('scenario.active') + (a.active.once ? ' · ' + t('scenario.once') : ''), 'ok') : badge(t('scenario.default'), ''),
          ' ', h('span', { class: 'mono', text: a.active ? a.active.id : a.default })));
    })));

    const rows = CREDS.filter(([f]) => creds[f] !== undefined && creds[f] !== '').map(([f, secret, long]) => {
      const value = String(creds[f]);
      const shown = !secret || S.revealed.has(f);
      const val = h('code', { class: 'cred-value' + (long ? ' long' : ''), text: shown ? (long ? pemPreview(value) : value) : '••••••••••••', title: shown && long ? value : null });
      return h('div', { class: 'cred', data: { field: f, secret: secret ? 'yes' : null } },
        h('div', { class: 'cred-name' }, h('span', { text: t('cred.' + f) }), h('span', { class: 'mono muted', text: f })),
        val,
        h('div', { class: 'cred-ops' },
          secret ? h('button', { type: 'button', class: 'small', data: { op: 'reveal' }, text: shown ? t('hide') : t('reveal'), onclick: () => {
            if (S.revealed.has(f)) S.revealed.delete(f); else S.revealed.add(f);
            render(true);
          } }) : null,
          copyButton(() => value)));
    });
    const credentials = section('creds.title', h('p', { class: 'muted', text: t('creds.why') }), h('div', { class: 'creds' }, rows));
    const clockCard = section('clock.title', h('p', { class: 'muted', text: t('clock.why') }), clockBar());
    return h('div', { class: 'grid overview' },
      h('div', { class: 'col' }, merchants, clockCard, keyModeCard(m), strictCard(m), apiFaultsCard(m), subMerchantsCard(m), products),
      h('div', { class: 'col wide' }, credentials));
  }
  // keyModeCard switches the platform key WeChat Pay signs with: the
  // certificate, the public key, or the switch between them.
  const KEY_MODES = ['certificate', 'switching', 'public_key'];
  function keyModeCard(m) {
    const change = async (mode) => {
      try {
        await api('PATCH', '/sandbox/v1/merchants/' + enc(m.mchid), { platform_key_mode: mode });
        await loadMerchants();
        toast(t('keymode.changed', { mode: t('keymode.' + mode) }));
        render(true);
      } catch (err) { report(err); }
    };
    return section('keymode.title', h('p', { class: 'muted', text: t('keymode.why') }),
      h('div', { class: 'list', role: 'radiogroup', id: 'keymode' }, KEY_MODES.map((mode) =>
        h('button', { type: 'button', class: 'small' + (m.platform_key_mode === mode ? ' on' : ''), role: 'radio',
          'aria-checked': m.platform_key_mode === mode ? 'true' : 'false', data: { keyMode: mode },
          onclick: () => change(mode), text: t('keymode.' + mode) }))));
  }
  // strictCard chooses what a rule the sandbox only inferred does: warn
  // (the default) or refuse.
  function strictCard(m) {
    const change = async (strict) => {
      try {
        await api('PATCH', '/sandbox/v1/merchants/' + enc(m.mchid), { strict });
        await loadMerchants();
        toast(t('strict.changed', { mode: t('strict.' + strict) }));
        render(true);
      } catch (err) { report(err); }
    };
    return section('strict.title', h('p', { class: 'muted', text: t('strict.why') }),
      h('div', { class: 'list', role: 'radiogroup', id: 'strict' }, [false, true].map((strict) =>
        h('button', { type: 'button', class: 'small' + (!!m.strict === strict ? ' on' : ''), role: 'radio',
          'aria-checked': !!m.strict === strict ? 'true' : 'false', data: { strict: String(strict) },
          onclick: () => change(strict), text: t('strict.' + strict) }))));
  }
  // apiFaultsCard scripts what an upstream API does instead of answering
  // the merchant's next calls to an endpoint.
  const FAULT_KINDS = ['rate_limited', 'system_error', 'service_unavailable', 'timeout', 'bad_signature'];
  function apiFaultsCard(m) {
    const base = '/sandbox/v1/merchants/' + enc(m.mchid) + '/api-faults';
    const done = async (call, key) => {
      try {
        await call();
        await loadMerchants();
        toast(t(key));
        render(true);
      } catch (err) { report(err); }
    };
    const method = h('select', { name: 'method', 'aria-label': t('apifault.method') },
      h('option', { value: '', text: t('apifault.any') }), ['GET', 'POST'].map((x) => h('option', { value: x, text: x })));
    const path = h('input', { name: 'path', required: true, value: '/v3/payscore/serviceorder', placeholder: '/v3/payscore/serviceorder/*/complete', 'aria-label': t('apifault.path') });
    const kind = h('select', { name: 'kind', 'aria-label': t('apifault.kind') }, FAULT_KINDS.map((k) => h('option', { value: k, text: t('apifault.kind.' + k) })));
    const times = h('input', { name: 'times', type: 'number', min: '1', max: '100', value: '1', class: 'tiny', 'aria-label': t('apifault.times') });
    const hold = h('input', { name: 'hold', class: 'short', placeholder: '30s', 'aria-label': t('apifault.hold'), pattern: '([0-9]+(\\.[0-9]+)?(ms|s|m))+' });
    const add = (ev) => {
      ev.preventDefault();
      const body = { path: path.value.trim(), kind: kind.value, times: Number(times.value) || 1 };
      if (method.value) body.method = method.value;
      if (kind.value === 'timeout' && hold.value.trim()) body.hold = hold.value.trim();
      done(() => api('POST', base, body), 'apifault.added');
    };
    const faults = m.api_faults || [];
    return section('apifault.title', h('p', { class: 'muted', text: t('apifault.why') }),
      h('div', { class: 'list', id: 'api-faults' }, faults.length ? faults.map((f) =>
        h('div', { class: 'api-fault', data: { fault: f.id, kind: f.kind } },
          badge(t('apifault.kind.' + f.kind), 'warn'), ' ',
          h('span', { class: 'mono', text: (f.method || '*') + ' ' + f.path }), ' ',
          h('span', { class: 'muted', text: t('apifault.remaining', { n: f.remaining }) + (f.hold ? ' · ' + f.hold : '') }), ' ',
          h('button', { type: 'button', class: 'small', data: { op: 'delete' }, text: t('apifault.delete'),
            onclick: () => done(() => api('DELETE', base + '/' + enc(f.id)), 'apifault.deleted') })))
        : h('p', { class: 'muted', text: t('apifault.none') })),
      h('form', { class: 'inline fault-form', id: 'api-fault-form', onsubmit: add }, method, path, kind, times, hold,
        h('button', { type: 'submit', class: 'small', text: t('apifault.add') })));
  }
  // subMerchantsCard lists a service provider's (服务商) sub-merchants, the
  // sub_mchid its partner-mode calls may name; adding one makes the
  // merchant a service provider. PATCH replaces the whole list.
  function subMerchantsCard(m) {
    const subs = m.sub_merchants || [];
    const save = async (list, key, sub) => {
      try {
        await api('PATCH', '/sandbox/v1/merchants/' + enc(m.mchid), { sub_merchants: list });
        await loadMerchants();
        toast(t(key, { sub }));
        render(true);
      } catch (err) { report(err); }
    };
    const id = h('input', { name: 'sub_mchid', required: true, class: 'short', placeholder: '1900000109', inputmode: 'numeric', 'aria-label': t('sub.mchid') });
    const appid = h('input', { name: 'sub_appid', class: 'short', placeholder: 'wx…', 'aria-label': t('sub.appid') });
    const add = (ev) => {
      ev.preventDefault();
      const sub = { sub_mchid: id.value.trim() };
      if (appid.value.trim()) sub.sub_appid = appid.value.trim();
      save([...subs, sub], 'sub.added', sub.sub_mchid);
    };
    return section('sub.title', h('p', { class: 'muted', text: t('sub.why') }),
      h('div', { class: 'list', id: 'sub-merchants' }, subs.length ? subs.map((x) =>
        h('div', { class: 'api-fault sub-merchant', data: { subMchid: x.sub_mchid } },
          badge(t('partner.sub', { sub: x.sub_mchid }), 'tag'), ' ',
          x.sub_appid ? h('span', { class: 'mono muted', text: 'sub_appid ' + x.sub_appid }) : null, ' ',
          h('button', { type: 'button', class: 'small', data: { op: 'remove' }, text: t('sub.remove'),
            onclick: () => save(subs.filter((y) => y.sub_mchid !== x.sub_mchid), 'sub.removed', x.sub_mchid) })))
        : h('p', { class: 'muted', text: t('sub.none') })),
      h('form', { class: 'inline fault-form', id: 'sub-merchant-form', onsubmit: add }, id, appid,
        h('button', { type: 'submit', class: 'small', text: t('sub.add') })));
  }
  // partnerSub is the sub-merchant of a 支付分 partner (服务商) order from
  // its sessions' and notifications' ref, "sub:<sub_mchid>:<out_order_no>"
  // (docs/products/payscore.md); '' for a direct order.
  function partnerSub(ref) {
    const m = /^sub:([^:]+):/.exec(ref || '');
    return m ? m[1] : '';
  }
  function partnerBadge(ref) {
    const sub = partnerSub(ref);
    return sub ? badge(t('partner.sub', { sub }), 'tag', t('partner.why')) : null;
  }
  function pemPreview(pem) {
    const lines = pem.trim().split('\n');
    return lines.length > 2 ? lines[0] + ' … ' + lines[lines.length - 1] : pem;
  }
  function pickMerchant(mchid) {
    S.mchid = mchid;
    local.set(KEY_MCHID, mchid);
    $('#merchant').value = mchid;
    const m = merchant();
    if (m) setClock(m.clock);
    render(false);
  }

  // ---- scenarios: the catalogue per product, the active one marked
  async function viewScenarios(gen) {
    const m = merchant();
    if (!m) return h('p', { class: 'empty', text: t('merchants.none') });
    const product = PRODUCTS.includes(S.sub) ? S.sub : PRODUCTS[0];
    const [active, list] = await Promise.all([
      api('GET', '/sandbox/v1/merchants/' + enc(m.mchid) + '/scenarios'),
      S.scenarios[product] ? Promise.resolve(S.scenarios[product]) : api('GET', '/sandbox/v1/scenarios?product=' + product).then((o) => o.scenarios),
    ]);
    if (!current(gen)) return null;
    S.scenarios[product] = list;
    const state = active.products[product] || {};
    const tabs = h('div', { class: 'subtabs', role: 'tablist' }, PRODUCTS.map((p) =>
      h('a', { href: '#scenarios/' + p, class: p === product ? 'on' : '', data: { product: p }, text: productName(p) })));
    const set = async (id, once) => {
      try {
        await api('PUT', '/sandbox/v1/merchants/' + enc(m.mchid) + '/scenarios/' + product, once ? { id, once: true } : { id });
        toast(t(once ? 'scenario.set-once' : 'scenario.set', { id }));
        render(true);
      } catch (err) { report(err); }
    };
    const clear = async () => {
      try {
        await api('DELETE', '/sandbox/v1/merchants/' + enc(m.mchid) + '/scenarios/' + product);
        toast(t('scenario.cleared'));
        render(true);
      } catch (err) { report(err); }
    };
    const activeID = state.active ? state.active.id : '';
    const effective = activeID || state.default;
    const cards = list.map((s) => scenarioCard(s, product, {
      active: s.id === activeID, once: s.id === activeID && state.active.once, isDefault: s.id === state.default,
      effective: s.id === effective, set, clear,
    }));
    return [
      h('div', { class: 'bar' }, tabs),
      h('p', { class: 'muted explain', text: t('scenarios.how') }),
      h('div', { class: 'scenarios' }, cards),
    ];
  }

  function scenarioCard(s, product, o) {
    const facts = [];
    if (s.user && s.user.action) facts.push(['scenario.user', actionName(product, s.user.action) + (s.user.after ? ' · ' + t('after', { d: s.user.after }) : '')]);
    if (s.mode === 'manual') facts.push(['scenario.user', t('scenario.manual-user')]);
    for (const step of s.timeline || []) {
      facts.push(['scenario.timeline', '+' + step.after + ' → ' + Object.entries(step.set || {}).map(([k, v]) => k + ' = ' + JSON.stringify(v)).join(', ')]);
    }
    const n = s.notify || {};
    const notify = [];
    if (n.delay) notify.push(t('notify.delay', { d: n.delay }));
    for (const f of n.faults || []) notify.push(tOr('fault.' + f, f));
    if (n.fail_next) notify.push(t('notify.fail-next-n', { n: n.fail_next }));
    if (notify.length) facts.push(['scenario.notify', notify.join(' · ')]);
    for (const mg of s.magic || []) facts.push(['scenario.magic', mg.field + (mg.equals ? ' = ' + mg.equals : ' ' + t('prefix') + ' ' + mg.prefix)]);
    if (s.params && Object.keys(s.params).length) facts.push(['scenario.params', JSON.stringify(s.params)]);
    return h('article', { class: 'card scenario' + (o.active ? ' active' : '') + (o.effective ? ' effective' : ''), data: { scenario: s.id } },
      h('header', {},
        h('h3', { text: s.title }),
        h('div', { class: 'badges' },
          badge(t('mode.' + s.mode), s.mode === 'manual' ? 'warn' : ''),
          o.isDefault ? badge(t('scenario.default'), '') : null,
          o.active ? badge(t('scenario.active') + (o.once ? ' · ' + t('scenario.once') : ''), 'ok', t('scenario.active-why')) : null,
          !o.active && o.effective ? badge(t('scenario.in-effect'), 'ok') : null)),
      h('p', { class: 'mono muted', text: s.id }),
      h('p', { text: s.description }),
      h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', { text: t(k) }), h('dd', { text: v })])),
      h('div', { class: 'ops' },
        h('button', { type: 'button', class: 'primary', data: { op: 'activate' }, disabled: o.active && !o.once, onclick: () => o.set(s.id, false), text: t('scenario.activate') }),
        h('button', { type: 'button', data: { op: 'once' }, disabled: o.active && o.once, onclick: () => o.set(s.id, true), text: t('scenario.activate-once') }),
        o.active ? h('button', { type: 'button', class: 'link', data: { op: 'clear' }, onclick: o.clear, text: t('scenario.clear') }) : null));
  }

  // ---- sessions: what was launched, and the manual ones waiting for a person
  async function viewSessions(gen) {
    const m = merchant();
    if (!m) return h('p', { class: 'empty', text: t('merchants.none') });
    const out = await api('GET', '/sandbox/v1/sessions?limit=50&mchid=' + enc(m.mchid));
    if (!current(gen)) return null;
    const rows = out.sessions.map((s) => {
      const waiting = s.state === 'pending' && s.mode === 'manual';
      return h('div', { class: 'row-item session' + (waiting ? ' waiting' : ''), data: { session: s.id, state: s.state, subMchid: partnerSub(s.ref) || null } },
        h('div', { class: 'what' },
          h('strong', { text: productName(s.product) }),
          h('span', { class: 'mono', text: s.api }),
          partnerBadge(s.ref),
          h('span', { class: 'mono muted', text: s.id })),
        h('div', { class: 'meta' },
          badge(t('state.' + s.state), s.state === 'pending' ? 'warn' : s.state === 'returned' ? 'ok' : ''),
          badge(t('mode.' + s.mode), ''),
          s.action ? h('span', {}, t('session.action'), ' ', h('strong', { text: actionName(s.product, s.action) })) : null,
          h('span', { class: 'muted mono', text: s.scenario }),
          h('span', { class: 'muted', text: fmtTime(s.created_at, true) })),
        h('div', { class: 'ops' },
          s.state === 'pending' ? h('a', { class: 'button' + (waiting ? ' primary' : ''), href: '/act/' + enc(s.id), data: { op: 'act' }, text: t('session.act') }) : null,
          copyButton(() => location.origin + '/act/' + s.id, t('session.copy-link')),
          h('button', { type: 'button', class: 'small', onclick: () => { S.jf = { product: '', mchid: '', session_id: s.id, direction: '' }; location.hash = '#journal'; reloadJournal(); }, text: t('session.journal') }),
          h('button', { type: 'button', class: 'small', onclick: () => showJSON(t('session.title') + ' ' + s.id, s), text: t('details') })));
    });
    return [
      h('div', { class: 'bar' }, clockBar()),
      h('p', { class: 'muted explain', text: t('sessions.why') }),
      h('div', { class: 'list rows' }, rows.length ? rows : h('p', { class: 'empty', text: t('sessions.none') })),
    ];
  }

  // ---- journal
  async function loadJournal() {
    const q = journalQuery();
    q.set('limit', '100');
    const out = await api('GET', '/sandbox/v1/journal?' + q.toString());
    S.journal = [];
    S.seen = new Set();
    for (const x of out.exchanges) addExchange(x, false);
    S.older = out.next_before || 0;
  }
  async function reloadJournal() {
    try {
      const newest = await api('GET', '/sandbox/v1/journal?limit=1');
      S.newest = newest.exchanges.length ? newest.exchanges[0].id : 0;
      await loadJournal();
      startLive();
      if (S.view === 'journal') render(true);
    } catch (err) { report(err); }
  }
  async function loadOlder() {
    const q = journalQuery();
    q.set('limit', '100');
    q.set('before', String(S.older));
    try {
      const out = await api('GET', '/sandbox/v1/journal?' + q.toString());
      for (const x of out.exchanges) {
        if (S.seen.has(x.id)) continue;
        S.seen.add(x.id);
        S.journal.push(x);
      }
      S.older = out.next_before || 0;
      render(true);
    } catch (err) { report(err); }
  }

  async function viewJournal() {
    const f = S.jf;
    const select = (name, options) => h('select', { name, 'aria-label': t('journal.' + name), onchange: (ev) => { S.jf[name] = ev.target.value; reloadJournal(); } },
      options.map(([v, label]) => h('option', { value: v, text: label, selected: f[name] === v })));
    const sessionInput = h('input', { name: 'session_id', value: f.session_id, placeholder: t('journal.session_id'), 'aria-label': t('journal.session_id') });
    const filters = h('form', { class: 'filters', onsubmit: (ev) => { ev.preventDefault(); S.jf.session_id = sessionInput.value.trim(); reloadJournal(); } },
      select('product', [['', t('journal.all-products')], ...PRODUCTS.map((p) => [p, productName(p)])]),
      select('mchid', [['', t('journal.all-merchants')], ...S.merchants.map((m) => [m.mchid, m.mchid])]),
      select('direction', [['', t('journal.both')], ['in', t('dir.in')], ['out', t('dir.out')]]),
      sessionInput,
      h('button', { type: 'submit', class: 'small', text: t('journal.apply') }),
      Object.values(f).some(Boolean) ? h('button', { type: 'button', class: 'link', onclick: () => { S.jf = { product: '', mchid: '', session_id: '', direction: '' }; reloadJournal(); }, text: t('journal.clear') }) : null);
    const list = h('div', { id: 'journal-list', class: 'journal' },
      S.journal.length ? S.journal.map((x) => journalRow(x, false)) : h('p', { class: 'empty', text: t('journal.none') }));
    return [
      h('div', { class: 'bar' }, filters),
      list,
      S.older ? h('p', { class: 'center' }, h('button', { type: 'button', onclick: loadOlder, text: t('journal.older') })) : null,
    ];
  }

  function journalRow(x, fresh) {
    const path = (() => { try { const u = new URL(x.url, location.origin); return x.direction === 'out' ? u.host + u.pathname : u.pathname; } catch { return x.url; } })();
    const nv = (x.violations || []).length;
    const failed = nv > 0 || !!x.error || !x.status || x.status >= 400;
    return h('button', { type: 'button', class: 'xrow' + (fresh ? ' fresh' : '') + (failed ? ' failed' : '') + (S.detail === x.id ? ' on' : ''),
      data: { id: x.id, direction: x.direction, product: x.product || '', status: x.status, session: x.session_id || '', notify: x.notify_id || '' },
      onclick: () => showExchange(x) },
    h('span', { class: 'x-time mono', text: fmtTime(x.time) }),
    h('span', { class: 'x-dir ' + x.direction, title: t('dir.' + x.direction), text: x.direction === 'out' ? '←' : '→' }),
    statusBadge(x.status, true),
    h('span', { class: 'x-path' }, h('span', { class: 'mono', text: x.method + ' ' }), h('span', { class: 'mono', text: path })),
    h('span', { class: 'x-tags' },
      x.product ? badge(productName(x.product), 'tag') : null,
      x.direction === 'out' ? badge(t('journal.attempt', { n: x.attempt || 1 }), 'tag') : null,
      nv ? badge('⚠ ' + t('journal.violations', { n: nv }), 'bad') : null,
      (x.warnings || []).length ? badge(t('journal.warnings', { n: x.warnings.length }), 'warn') : null,
      x.diagnostics ? badge(t('journal.diagnostics'), 'warn') : null),
    h('span', { class: 'x-lat mono muted', text: (x.latency_ms || 0).toFixed(1) + ' ms' }));
  }

  function closeDetail() {
    S.detail = null;
    const d = $('#detail');
    d.hidden = true;
    d.replaceChildren();
    document.body.classList.remove('with-detail');
    for (const r of $$('.xrow.on')) r.classList.remove('on');
  }
  function openDetail(title, ...body) {
    const d = $('#detail');
    d.replaceChildren(h('div', { class: 'detail-head' }, h('h2', { text: title }),
      h('button', { type: 'button', class: 'link close', 'aria-label': t('close'), onclick: closeDetail, text: '✕' })), ...body.filter(Boolean));
    d.hidden = false;
    d.scrollTop = 0;
    document.body.classList.add('with-detail');
  }
  function showJSON(title, obj) {
    S.detail = null;
    openDetail(title, h('pre', { class: 'code', text: JSON.stringify(obj, null, 2) }));
  }

  function showExchange(x) {
    // Listings and the live stream carry summaries (bodies cut to a
    // preview): the detail shows the whole entry.
    if (x.summary) {
      api('GET', '/sandbox/v1/journal/' + x.id).then(showExchange).catch(report);
      return;
    }
    S.detail = x.id;
    for (const r of $$('.xrow')) r.classList.toggle('on', r.dataset.id === String(x.id));
    const filterBy = (k, v) => h('button', { type: 'button', class: 'link mono', text: v, onclick: () => {
      S.jf = { product: '', mchid: '', session_id: '', direction: '' };
      S.jf[k] = v;
      location.hash = '#journal';
      reloadJournal();
    } });
    // problems lists violations (refused) or warnings (let through).
    const problems = (cls, titleKey, vs) => vs && vs.length ? h('div', { class: 'block ' + cls }, h('h3', { text: t(titleKey, { n: vs.length }) }),
      h('table', {}, h('thead', {}, h('tr', {}, h('th', { text: t('x.path') }), h('th', { text: t('x.message') }))),
        h('tbody', {}, vs.map((v) => h('tr', {}, h('td', { class: 'mono', text: v.path || '/' }), h('td', { text: v.message })))))) : null;
    openDetail('#' + x.id + ' ' + x.method,
      h('p', { class: 'mono wrap', text: x.url }),
      kv([
        ['x.time', fmtTime(x.time, true)],
        ['x.direction', t('dir.' + x.direction)],
        ['x.status', statusBadge(x.status)],
        ['x.latency', (x.latency_ms || 0).toFixed(1) + ' ms'],
        ['x.product', x.product ? productName(x.product) : ''],
        ['x.merchant', x.mchid ? filterBy('mchid', x.mchid) : ''],
        ['x.session', x.session_id ? filterBy('session_id', x.session_id) : ''],
        ['x.notify', x.notify_id ? x.notify_id + ' · ' + t('journal.attempt', { n: x.attempt || 1 }) : ''],
        ['x.scenario', x.scenario],
        ['x.request_id', x.request_id],
      ]),
      problems('violations', 'x.violations', x.violations),
      problems('warnings', 'x.warnings', x.warnings),
      codeBlock('x.diagnostics', x.diagnostics),
      codeBlock('x.error', x.error),
      codeBlock('x.request', pretty(x.request_body)),
      codeBlock('x.response', pretty(x.response_body)));
  }

  // openExchange shows one journal entry in the detail panel.
  async function openExchange(id) {
    try {
      showExchange(await api('GET', '/sandbox/v1/journal/' + enc(id)));
    } catch (err) { report(err); }
  }

  // ---- report: the merchant's integration report card
  const verdictKind = { passed: 'ok', failed: 'bad', not_exercised: '' };
  async function viewReport(gen) {
    const m = merchant();
    if (!m) return h('p', { class: 'empty', text: t('merchants.none') });
    const path = '/sandbox/v1/merchants/' + enc(m.mchid) + '/report?since=' + enc(S.reportSince);
    const r = await api('GET', path);
    if (!current(gen)) return null;
    const windowSelect = h('select', { name: 'since', 'aria-label': t('report.window'), onchange: (ev) => { S.reportSince = ev.target.value; render(false); } },
      REPORT_WINDOWS.map((w) => h('option', { value: w, text: t('report.window.' + (w || 'all')), selected: S.reportSince === w })));
    const totals = h('div', { class: 'report-totals' },
      badge(t('report.passed-n', { n: r.counts.passed }), 'ok'),
      badge(t('report.failed-n', { n: r.counts.failed }), r.counts.failed ? 'bad' : ''),
      badge(t('report.not-exercised-n', { n: r.counts.not_exercised }), ''),
      h('span', { class: 'muted', text: t('report.entries', { n: r.entries }) }),
      r.truncated ? badge(t('report.truncated'), 'warn') : null);
    const products = r.products.map((p) => h('section', { class: 'card report-product', data: { product: p.product } },
      h('header', {}, h('h2', { text: productName(p.product) }),
        h('div', { class: 'badges' },
          badge(t('report.passed-n', { n: p.counts.passed }), 'ok'),
          p.counts.failed ? badge(t('report.failed-n', { n: p.counts.failed }), 'bad') : null,
          badge(t('report.not-exercised-n', { n: p.counts.not_exercised }), ''))),
      p.checks.map(checkCard)));
    const failed = r.products.flatMap((p) => p.checks.filter((c) => c.verdict === 'failed').map((c) =>
      h('li', {}, badge(productName(p.product), 'tag'), ' ',
        h('a', { href: '#report', onclick: (ev) => { ev.preventDefault(); $(`.report-product[data-product="${p.product}"] .check[data-check="${c.id}"]`)?.scrollIntoView(); }, text: c.title }),
        ' — ', h('span', { class: 'muted', text: c.summary }))));
    return [
      h('div', { class: 'bar' },
        h('label', { class: 'inline' }, h('span', { class: 'muted', text: t('report.window') + ' ' }), windowSelect),
        h('button', { type: 'button', class: 'small', data: { op: 'export-html' }, onclick: () => download(path + '&format=html', 'mpsandbox-report-' + m.mchid + '.html'), text: t('report.export-html') }),
        h('button', { type: 'button', class: 'small', data: { op: 'export-md' }, onclick: () => download(path + '&format=md', 'mpsandbox-report-' + m.mchid + '.md'), text: t('report.export-md') })),
      h('p', { class: 'muted explain', text: t('report.why') }),
      totals,
      failed.length ? h('section', { class: 'card report-failed' }, h('h2', { text: t('report.failed-title') }), h('ul', {}, failed)) : null,
      products,
    ];
  }

  function checkCard(c) {
    const evidence = c.evidence.map((e) => h('li', { class: e.bad ? 'bad' : '' },
      h('button', { type: 'button', class: 'link mono', data: { exchange: e.id }, onclick: () => openExchange(e.id), text: '#' + e.id }),
      ' ', h('span', { class: 'mono', text: e.what }), ' — ', h('span', { text: e.note })));
    return h('article', { class: 'check ' + c.verdict, data: { check: c.id, verdict: c.verdict } },
      h('header', {},
        badge(t('verdict.' + c.verdict), verdictKind[c.verdict]),
        h('h3', { text: c.title }),
        h('span', { class: 'mono muted', text: c.id })),
      h('p', { text: c.summary }),
      h('dl', { class: 'facts' },
        c.fix ? [h('dt', { text: t('report.fix') }), h('dd', { text: c.fix })] : null,
        h('dt', { text: t('report.rule') }), h('dd', { text: c.rule + (c.inferred ? ' ' + t('report.inferred') : '') }),
        h('dt', { text: t('report.source') }), h('dd', { text: c.source })),
      evidence.length ? h('details', { open: c.verdict === 'failed' },
        h('summary', { text: t('report.evidence', { n: c.evidence_total }) }), h('ul', { class: 'evidence' }, evidence)) : null);
  }

  // download saves an export; a plain link would not carry the token.
  async function download(path, name) {
    try {
      const headers = token ? { Authorization: 'Bearer ' + token } : {};
      const res = await fetch(path, { headers, cache: 'no-store' });
      if (!res.ok) throw new APIError(res.status, null, await res.text());
      const a = h('a', { href: URL.createObjectURL(await res.blob()), download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    } catch (err) { report(err); }
  }

  // ---- notifications, per order
  async function viewNotifications(gen) {
    const m = merchant();
    if (!m) return h('p', { class: 'empty', text: t('merchants.none') });
    const out = await api('GET', '/sandbox/v1/notifications?limit=200&mchid=' + enc(m.mchid));
    const attempts = {};
    await Promise.all(out.notifications.filter((n) => S.expanded.has(n.id)).map((n) =>
      api('GET', '/sandbox/v1/notifications/' + enc(n.id)).then((o) => { attempts[n.id] = o.attempts; })));
    if (!current(gen)) return null;
    const groups = new Map();
    for (const n of out.notifications.slice().sort((a, b) => b.created_at.localeCompare(a.created_at))) {
      const k = n.product + '\u0000' + n.ref;
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(n);
    }
    const cards = Array.from(groups.values()).map((ns) => h('section', { class: 'card order', data: { ref: ns[0].ref, subMchid: partnerSub(ns[0].ref) || null } },
      h('header', {}, h('h3', {}, h('span', { class: 'muted', text: t('notifications.order') + ' ' }), h('span', { class: 'mono', text: ns[0].ref })),
        h('span', { class: 'badges' }, partnerBadge(ns[0].ref), badge(productName(ns[0].product), 'tag'))),
      ns.map((n) => notificationRow(n, attempts[n.id]))));
    return [
      h('div', { class: 'bar' }, clockBar()),
      h('p', { class: 'muted explain', text: t('notifications.why') }),
      cards.length ? cards : h('p', { class: 'empty', text: t('notifications.none') }),
    ];
  }

  function notificationRow(n, attempts) {
    const op = async (name, body) => {
      try {
        await api('POST', '/sandbox/v1/notifications/' + enc(n.id) + '/' + name, body);
        toast(t('notify.done.' + name));
        render(true);
      } catch (err) { report(err); }
    };
    const failN = h('input', { type: 'number', min: '1', max: '100', value: '1', class: 'tiny', 'aria-label': t('notify.fail-next') });
    const stateKind = { delivered: 'ok', pending: 'warn', held: 'warn', failed: 'bad', refused: 'bad', dropped: '' }[n.state] || '';
    const open = S.expanded.has(n.id);
    return h('div', { class: 'notification', data: { notify: n.id, state: n.state, attempts: n.attempts, failNext: n.fail_next || 0 } },
      h('div', { class: 'n-head' },
        h('strong', { class: 'mono', text: n.event }),
        badge(t('nstate.' + n.state), stateKind),
        h('span', { class: 'muted', text: t('notify.attempts', { n: n.attempts }) }),
        n.last_status ? h('span', {}, t('notify.last'), ' ', statusBadge(n.last_status)) : null,
        n.state === 'pending' ? h('span', { class: 'muted', text: t('notify.due', { at: fmtTime(n.due_at, true) }) }) : null,
        n.fail_next ? badge(t('notify.will-fail', { n: n.fail_next }), 'warn') : null,
        n.faults && n.faults.bad_signature ? badge(tOr('fault.bad_signature', 'bad_signature'), 'warn') : null,
        n.faults && n.faults.duplicate ? badge(tOr('fault.duplicate', 'duplicate'), 'warn') : null),
      h('p', { class: 'mono muted wrap', text: n.url }),
      n.last_error ? h('p', { class: 'bad wrap', text: n.last_error }) : null,
      h('div', { class: 'ops' },
        // The worker refuses what a state does not allow; the page offers
        // only what it accepts.
        n.state !== 'dropped' && n.state !== 'refused'
          ? h('button', { type: 'button', class: 'small', data: { op: 'redeliver' }, onclick: () => op('redeliver'), text: t('notify.redeliver') }) : null,
        n.state === 'pending' ? h('button', { type: 'button', class: 'small', data: { op: 'hold' }, onclick: () => op('hold'), text: t('notify.hold') }) : null,
        n.state === 'held' ? h('button', { type: 'button', class: 'small', data: { op: 'release' }, onclick: () => op('release'), text: t('notify.release') }) : null,
        h('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); op('fail-next', { n: Number(failN.value) }); } },
          h('button', { type: 'submit', class: 'small', data: { op: 'fail-next' }, text: t('notify.fail-next') }), failN),
        h('button', { type: 'button', class: 'link', data: { op: 'attempts' }, onclick: () => {
          if (open) S.expanded.delete(n.id); else S.expanded.add(n.id);
          render(true);
        }, text: open ? t('notify.hide-attempts') : t('notify.show-attempts') })),
      open && attempts ? attemptsTable(attempts) : null);
  }

  function attemptsTable(xs) {
    if (!xs.length) return h('p', { class: 'muted', text: t('notify.no-attempts') });
    return h('table', { class: 'attempts' },
      h('thead', {}, h('tr', {}, ['#', t('x.time'), t('x.status'), t('x.latency'), t('x.error')].map((c) => h('th', { text: c })))),
      h('tbody', {}, xs.slice().sort((a, b) => a.id - b.id).map((x) => h('tr', { class: 'clickable', onclick: () => showExchange(x), data: { id: x.id } },
        h('td', { text: String(x.attempt || '') }),
        h('td', { class: 'mono', text: fmtTime(x.time, true) }),
        h('td', {}, statusBadge(x.status)),
        h('td', { class: 'mono', text: (x.latency_ms || 0).toFixed(1) + ' ms' }),
        h('td', { class: 'wrap', text: x.error || '' })))));
  }

  // ---- parking: the repayment product's v3 parking flow behind 垫资 —
  // entries (创建停车入场), deductions (扣费受理) and what they sent, per
  // vehicle user; the outcome of the next ones; the user's repayment.
  // PARKING_OUTCOMES are the repayment scenarios with parking params (a
  // test holds the list to the catalogue).
  const PARKING_OUTCOMES = ['repayment.parking-paid', 'repayment.parking-paid-after-retries', 'repayment.parking-failed', 'repayment.parking-advanced', 'repayment.parking-advanced-unrepaid', 'repayment.parking-entry-blocked'];
  async function viewParking(gen) {
    const m = merchant();
    if (!m) return h('p', { class: 'empty', text: t('merchants.none') });
    const q = 'mchid=' + enc(m.mchid);
    const [active, users, flow, notes] = await Promise.all([
      api('GET', '/sandbox/v1/merchants/' + enc(m.mchid) + '/scenarios'),
      api('GET', '/sandbox/v1/vehicle-users?' + q),
      api('GET', '/sandbox/v1/parking?' + q),
      api('GET', '/sandbox/v1/notifications?product=repayment&limit=200&' + q),
    ]);
    if (!current(gen)) return null;
    const sent = new Map();
    for (const n of notes.notifications.slice().sort((a, b) => a.created_at.localeCompare(b.created_at))) {
      if (!sent.has(n.ref)) sent.set(n.ref, []);
      sent.get(n.ref).push(n);
    }
    const cards = users.users.map((u) => ({ u, entries: flow.entries.filter((e) => e.openid === u.openid), txs: flow.transactions.filter((x) => x.openid === u.openid) }))
      .sort((a, b) => (b.entries.length + b.txs.length > 0) - (a.entries.length + a.txs.length > 0))
      .map((x) => vehicleCard(m, x.u, x.entries, x.txs, sent));
    const strays = flow.entries.filter((e) => !e.openid);
    return [
      h('div', { class: 'bar' }, clockBar()),
      h('p', { class: 'muted explain', text: t('parking.why') }),
      parkingOutcomes(m, active.products.repayment || {}),
      cards.length ? cards : h('p', { class: 'empty', text: t('parking.users.none') }),
      strays.length ? h('section', { class: 'card vehicle-user', data: { openid: '' } }, h('h3', { text: t('parking.strays') }), entriesTable(strays, sent)) : null,
    ];
  }
  // parkingOutcomes activates the parking scenario that decides what the
  // merchant's next entries and deductions do (until changed): the
  // merchant's active repayment scenario.
  function parkingOutcomes(m, state) {
    const activeID = state.active ? state.active.id : '';
    const base = '/sandbox/v1/merchants/' + enc(m.mchid) + '/scenarios/repayment';
    const set = async (id) => {
      try {
        if (id) await api('PUT', base, { id }); else await api('DELETE', base);
        toast(t('parking.outcome.set', { name: t(id ? 'parking.outcome.' + id : 'parking.outcome.default') }));
        render(true);
      } catch (err) { report(err); }
    };
    const button = (id, label) => h('button', { type: 'button', class: 'small' + (activeID === id ? ' on' : ''), role: 'radio',
      'aria-checked': activeID === id ? 'true' : 'false', title: id || state.default, data: { outcome: id }, onclick: () => set(id), text: label });
    return section('parking.outcome.title', h('p', { class: 'muted', text: t('parking.outcome.why') }),
      h('div', { class: 'list', role: 'radiogroup', id: 'parking-outcome' },
        button('', t('parking.outcome.default')),
        PARKING_OUTCOMES.map((id) => button(id, t('parking.outcome.' + id)))),
      activeID && !PARKING_OUTCOMES.includes(activeID) ? h('p', { class: 'muted', text: t('parking.outcome.other', { id: activeID }) }) : null);
  }
  function vehicleCard(m, u, entries, txs, sent) {
    const repay = async (action) => {
      try {
        await api('POST', '/sandbox/v1/vehicle-users/' + enc(u.openid) + '/repay', { mchid: m.mchid, action });
        toast(t(action === 'repay' ? 'parking.repaid' : 'parking.repay-failed'));
        render(true);
      } catch (err) { report(err); }
    };
    const a = u.last_attempt;
    const stateKind = { NORMAL: 'ok', OVERDUE: 'bad', PAUSED: 'warn' }[u.user_state] || '';
    return h('section', { class: 'card vehicle-user', data: { openid: u.openid, state: u.user_state, owed: u.owed, lastAttempt: a ? a.action : null } },
      h('header', { class: 'order-head' },
        h('h3', {}, h('span', { class: 'mono', text: u.plate_number }), ' ', h('span', { class: 'mono muted', text: u.openid })),
        h('span', { class: 'badges' }, badge(u.user_state, stateKind), u.fixture ? badge(t('parking.fixture'), '') : null)),
      kv([
        ['parking.owed', u.owed ? yuan(u.owed) : ''],
        ['parking.advances', u.advances.length ? u.advances.map((x) => x.out_trade_no + ' ' + yuan(x.amount) + ' user_repaid ' + x.user_repaid).join(' · ') : ''],
        ['parking.last-attempt', a ? actionName('repayment', a.action) + ' · ' + yuan(a.amount) + ' · ' + fmtTime(a.at, true) + ' · ' + (a.session_id || t('parking.outside-jump')) : ''],
      ]),
      u.owed ? h('div', { class: 'ops' },
        h('button', { type: 'button', class: 'primary', data: { op: 'repay' }, onclick: () => repay('repay'), text: t('parking.repay') }),
        h('button', { type: 'button', data: { op: 'repay-fail' }, onclick: () => repay('fail'), text: t('parking.repay-fail') })) : null,
      entries.length ? [h('h4', { text: t('parking.entries') }), entriesTable(entries, sent)] : null,
      txs.length ? [h('h4', { text: t('parking.transactions') }), transactionsTable(txs, sent)] : null);
  }
  // sentBadges are the notifications sent for a ref: event and state.
  function sentBadges(ns) {
    const kind = { delivered: 'ok', pending: 'warn', held: 'warn', failed: 'bad', refused: 'bad' };
    return (ns || []).map((n) => h('span', { class: 'badge ' + (kind[n.state] || ''), data: { event: n.event, state: n.state }, title: fmtTime(n.created_at, true) },
      n.event + ' · ' + t('nstate.' + n.state)));
  }
  function parkingTable(cls, heads, rows) {
    return h('div', { class: 'table-wrap' }, h('table', { class: 'attempts ' + cls },
      h('thead', {}, h('tr', {}, heads.map((c) => h('th', { text: c })))),
      h('tbody', {}, rows)));
  }
  function entriesTable(entries, sent) {
    return parkingTable('entries', ['out_parking_no', t('parking.col.state'), t('parking.col.time'), t('parking.col.scenario'), t('parking.col.sent')],
      entries.map((e) => h('tr', { data: { outParkingNo: e.entry.out_parking_no, state: e.entry.state } },
        h('td', { class: 'mono', text: e.entry.out_parking_no }),
        h('td', {}, badge(e.entry.state, e.entry.state === 'NORMAL' ? 'ok' : 'bad'), e.entry.block_reason ? ' ' + e.entry.block_reason : ''),
        h('td', { class: 'mono', text: fmtTime(e.created_at, true) }),
        h('td', { class: 'mono muted', text: e.scenario }),
        h('td', { class: 'wrap' }, sentBadges(sent.get(e.entry.out_parking_no))))));
  }
  function transactionsTable(txs, sent) {
    const kind = { SUCCESS: 'ok', ACCEPTED: 'warn', PAY_FAIL: 'bad' };
    return parkingTable('transactions', ['out_trade_no', t('parking.col.amount'), 'trade_state', 'bank_type', 'user_repaid', t('parking.col.scenario'), t('parking.col.sent')],
      txs.map((x) => {
        const tx = x.transaction;
        return h('tr', { data: { outTradeNo: tx.out_trade_no, tradeState: tx.trade_state, bankType: tx.bank_type || '', userRepaid: tx.user_repaid || '' } },
          h('td', { class: 'mono', text: tx.out_trade_no }),
          h('td', { class: 'mono', text: yuan(tx.amount.total) }),
          h('td', {}, badge(tx.trade_state, kind[tx.trade_state] || ''),
            tx.trade_state === 'ACCEPTED' ? h('span', { class: 'muted', text: ' ' + t('parking.settles', { at: fmtTime(x.settle_at, true) }) }) : null),
          h('td', { class: 'mono', text: tx.bank_type || '—' }),
          h('td', {}, tx.user_repaid ? badge(tx.user_repaid, tx.user_repaid === 'Y' ? 'ok' : 'bad') : '—'),
          h('td', { class: 'mono muted', text: x.scenario }),
          h('td', { class: 'wrap' }, sentBadges(sent.get(tx.out_trade_no))));
      }));
  }

  // ---- act as the user: /act/{session_id}
  async function startAct(id) {
    $('#tabs').hidden = true;
    $('.pick-merchant').hidden = true;
    $('#live').hidden = true;
    $('#signout').hidden = !token;
    main().replaceChildren(h('p', { class: 'empty', text: t('loading') }));
    let out;
    try {
      out = await api('GET', '/sandbox/v1/sessions/' + enc(id));
    } catch (err) {
      if (err.status === 401) return;
      main().replaceChildren(h('section', { class: 'card prompt' }, h('h1', { text: t('act.missing') }), h('p', { text: err.message }),
        h('p', {}, h('a', { href: '/#sessions', text: t('act.back-to-qa') }))));
      return;
    }
    let name = '';
    try { name = (await api('GET', '/sandbox/v1/merchants/' + enc(out.session.mchid))).name; } catch { /* the name is a nicety */ }
    renderAct(out.session, out.actions || [], name, out.subject);
  }

  // yuan writes an amount in fen as the mini-programs do: ¥12.34.
  const yuan = (fen) => '¥' + (Number(fen) / 100).toFixed(2);

  // subject is what the session is about (the trade to pay, the order to
  // confirm), when the product says: GET /sandbox/v1/sessions/{id}.
  function renderAct(s, actions, merchantName, subject) {
    clearTimeout(S.actPoll);
    document.body.dataset.state = s.state;
    const pending = s.state === 'pending';
    const rendered = new Set();
    const resolve = async (action, btn) => {
      for (const b of $$('[data-action]')) b.disabled = true;
      btn.classList.add('busy');
      try {
        const out = await api('POST', '/sandbox/v1/sessions/' + enc(s.id) + '/resolve', { action });
        toast(t('act.done', { action: actionName(s.product, action) }));
        renderAct(out.session, [], merchantName, subject);
      } catch (err) {
        report(err);
        try {
          const again = await api('GET', '/sandbox/v1/sessions/' + enc(s.id));
          renderAct(again.session, again.actions || [], merchantName, again.subject);
        } catch { /* the toast said it */ }
      }
    };
    // ui is what a stand-in draws with: has() tells whether the session
    // offers an action, button() draws one that resolves the session.
    const ui = {
      s, merchantName, subject,
      has: (...names) => pending && names.some((a) => actions.includes(a)),
      button(action, label, cls) {
        if (!ui.has(action)) return null;
        rendered.add(action);
        const b = h('button', { type: 'button', class: cls || '', data: { action }, text: label || actionName(s.product, action) });
        b.addEventListener('click', () => resolve(action, b));
        return b;
      },
    };
    const stand = { payscore: standPayScore, embedpay: standEmbedPay, repayment: standRepayment, issuer: standIssuer }[s.product];
    const screen = pending && stand ? stand(ui) : returnedScreen(s);
    const others = actions.filter((a) => !rendered.has(a));
    const info = h('section', { class: 'card act-info' },
      h('h2', { text: t('act.session') }),
      kv([
        ['x.product', productName(s.product)], ['act.api', s.api], ['act.target', s.target],
        ['x.merchant', (merchantName ? merchantName + ' · ' : '') + s.mchid],
        ['x.scenario', s.scenario], ['act.mode', t('mode.' + s.mode)], ['act.state', t('state.' + s.state)],
        ['session.action', s.action ? actionName(s.product, s.action) : ''],
        ['act.created', fmtTime(s.created_at, true)],
        ['act.due', pending && s.mode === 'auto' ? fmtTime(s.due_at, true) : ''],
      ]),
      pending && s.mode === 'auto' ? h('p', { class: 'warn-text', text: t('act.auto') }) : null,
      pending && others.length ? h('div', { class: 'block' }, h('h3', { text: t('act.other') }),
        h('div', { class: 'ops' }, others.map((a) => ui.button(a)))) : null,
      s.return ? codeBlock('act.return', pretty(s.return)) : null,
      codeBlock('act.args', pretty(s.args)),
      h('p', {}, h('a', { href: '/#sessions', text: t('act.back-to-qa') })));
    main().replaceChildren(h('div', { class: 'act', data: { product: s.product, state: s.state } }, screen, info));
    // Someone else (the admin API, the manual timeout) may decide first.
    const poll = async () => {
      try {
        const again = await api('GET', '/sandbox/v1/sessions/' + enc(s.id));
        if (again.session.state !== s.state) renderAct(again.session, again.actions || [], merchantName, again.subject);
        else S.actPoll = setTimeout(poll, 3000);
      } catch { /* a reload shows it */ }
    };
    if (pending) S.actPoll = setTimeout(poll, 3000);
  }

  // phone is a WeChat page: a navigation bar with an optional back icon,
  // the title and the capsule, then the screen.
  function phone(title, back, ...screen) {
    return h('div', { class: 'phone' },
      h('div', { class: 'nav' },
        back || h('span', { class: 'nav-back' }),
        h('span', { class: 'nav-title', text: title }),
        h('span', { class: 'capsule', 'aria-hidden': 'true' }, h('i'), h('b'))),
      h('div', { class: 'screen' }, ...screen));
  }

  function returnedScreen(s) {
    const ok = s.state === 'returned';
    return phone(productName(s.product), null,
      h('div', { class: 'result' + (ok ? ' ok' : '') },
        h('div', { class: 'result-icon', text: ok ? '↩' : '⌛' }),
        h('h2', { text: t(ok ? 'act.returned' : 'act.expired') }),
        s.action ? h('p', {}, t('act.user-did'), ' ', h('strong', { text: actionName(s.product, s.action) })) : null,
        h('p', { class: 'muted', text: t(ok ? 'act.returned-why' : 'act.expired-why') })));
  }

  // The 支付分 confirm page: confirm or cancel; after confirming, the user
  // leaves by the in-page button (query_id comes back) or by the top-left
  // back icon (no extraData, the 支付分 jump page §1.3).
  function standPayScore(ui) {
    const root = h('div', { class: 'phone-wrap' });
    const confirmPage = () => {
      const step = ui.has('confirm', 'confirm_back_icon')
        ? h('button', { type: 'button', class: 'primary wide', data: { step: 'confirm' }, onclick: confirmedPage, text: t('ps.confirm') }) : null;
      root.replaceChildren(phone(t('ps.nav'), null,
        h('div', { class: 'ps-head' }, h('div', { class: 'ps-logo', text: '分' }), h('h2', { text: t('ps.title') }),
          h('p', { class: 'muted', text: ui.merchantName || ui.s.mchid }),
          ui.subject ? h('p', { class: 'ps-subject', data: { amount: ui.subject.amount } },
            ui.subject.title ? h('span', { text: ui.subject.title + ' · ' }) : null,
            t('ps.risk-fund'), ' ', h('strong', { text: yuan(ui.subject.amount) })) : null),
        h('ul', { class: 'ps-terms' }, h('li', { text: t('ps.term1') }), h('li', { text: t('ps.term2') })),
        h('div', { class: 'stack' }, step, ui.button('cancel', t('ps.cancel'), 'wide'), ui.button('expired', t('ps.expired'), 'link'))));
    };
    const confirmedPage = () => {
      const back = ui.button('confirm_back_icon', '‹', 'nav-back icon');
      if (back) back.title = actionName('payscore', 'confirm_back_icon');
      root.replaceChildren(phone(t('ps.nav'), back,
        h('div', { class: 'result ok' }, h('div', { class: 'result-icon', text: '✓' }), h('h2', { text: t('ps.confirmed') }),
          h('p', { class: 'muted', text: t('ps.confirmed-why') })),
        h('div', { class: 'stack' }, ui.button('confirm', t('ps.back-to-merchant'), 'primary wide')),
        h('p', { class: 'hint', text: t('ps.back-hint') })));
    };
    confirmPage();
    // The confirmed page's actions are reached through the confirm step,
    // not listed again under "other actions".
    ui.button('confirm');
    ui.button('confirm_back_icon');
    return root;
  }

  // The P云 half-screen cashier over the merchant's mini-program.
  function standEmbedPay(ui) {
    const args = parse(ui.s.args) || {};
    const payID = new URLSearchParams(String(args.path || '').split('?')[1] || '').get('pay_id') || '';
    return h('div', { class: 'phone-wrap' }, phone(ui.merchantName || t('ep.merchant-app'), null,
      h('div', { class: 'behind' }, h('i'), h('i'), h('i')),
      h('div', { class: 'sheet' },
        h('div', { class: 'sheet-head' }, h('span', { class: 'sheet-title', text: t('ep.title') }), ui.button('close', '✕', 'link icon')),
        h('div', { class: 'ep-amount' }, h('span', { class: 'muted', text: t('ep.paying-to') }), h('strong', { text: ui.merchantName || ui.s.mchid }),
          ui.subject ? h('strong', { class: 'ep-value', data: { amount: ui.subject.amount }, text: yuan(ui.subject.amount) }) : null,
          ui.subject && ui.subject.title ? h('span', { class: 'muted', text: ui.subject.title }) : null),
        h('p', { class: 'mono muted center', text: 'pay_id ' + payID }),
        h('div', { class: 'stack' },
          ui.button('pay', t('ep.pay'), 'primary wide'),
          ui.button('paying', t('ep.paying'), 'wide'),
          ui.button('fail', t('ep.fail'), 'wide danger')),
        h('p', { class: 'hint', text: t('ep.hint') }))));
  }

  // The 还款 mini-program (or the App's WXLaunchMiniProgram).
  function standRepayment(ui) {
    const app = ui.s.api === 'app/launchMiniProgram';
    return h('div', { class: 'phone-wrap' }, phone(t('rp.nav'), ui.button('cancel', '‹', 'nav-back icon'),
      h('div', { class: 'rp-head' }, h('h2', { text: t('rp.title') }), h('p', { class: 'muted', text: ui.merchantName || ui.s.mchid })),
      h('div', { class: 'stack' },
        ui.button('repay', t('rp.repay'), 'primary wide'),
        ui.button('fail', t('rp.fail'), 'wide danger'),
        ui.button('cancel', t('rp.cancel'), 'wide')),
      app && ui.has('deny', 'unsupported') ? h('div', { class: 'stack' }, h('p', { class: 'hint', text: t('rp.app') }),
        ui.button('deny', null, 'wide'), ui.button('unsupported', null, 'wide')) : null));
  }

  // The ETC issuer plugin's page named in the plugin:// URL, or the
  // payment sheet of its functional page.
  function standIssuer(ui) {
    const args = parse(ui.s.args) || {};
    const m = String(args.url || '').match(/^plugin:\/\/[^/]+\/([^?]+)/);
    const page = ui.s.api === 'requestPayment' ? 'requestPayment' : (m ? m[1] : '');
    const kind = page === 'activeDes' || page === 'activeAgain' ? 'active' : page === 'requestPayment' ? 'pay' : '';
    const label = (a) => (kind ? tOr('is.' + kind + '.' + a, null) : null);
    const title = tOr('is.page.' + page, page || productName('issuer'));
    return h('div', { class: 'phone-wrap' }, phone(title, ui.button('cancel', '‹', 'nav-back icon'),
      h('div', { class: 'rp-head' }, h('h2', { text: title }), h('p', { class: 'mono muted', text: 'plugin://issuer-plugin/' + page })),
      ui.has('sign')
        ? h('div', { class: 'stack' }, ui.button('sign', null, 'primary wide'), ui.button('no_sign', null, 'wide danger'), ui.button('cancel', null, 'wide'))
        : h('div', { class: 'stack' }, ui.button('success', label('success'), 'primary wide'), ui.button('failure', label('failure'), 'wide danger'),
          ui.button('cancel', label('cancel'), 'wide'))));
  }

  function parse(raw) {
    if (!raw) return null;
    if (typeof raw === 'object') return raw;
    try { return JSON.parse(raw); } catch { return null; }
  }

  // ---- header wiring
  for (const b of $$('[data-lang]')) {
    b.addEventListener('click', () => {
      lang = b.dataset.lang;
      local.set(KEY_LANG, lang);
      applyWords();
      setLive(!!S.es && S.es.readyState === EventSource.OPEN);
      if (document.body.dataset.auth === 'needed') askToken(false);
      else if (document.body.classList.contains('act-page')) boot();
      else render(true);
    });
  }
  $('#signout').addEventListener('click', signOut);
  $('#merchant').addEventListener('change', (ev) => pickMerchant(ev.target.value));
  window.addEventListener('hashchange', () => { if (!S.locked && !document.body.classList.contains('act-page')) { closeDetail(); route(); } });
  document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closeDetail(); });

  boot();
})();
