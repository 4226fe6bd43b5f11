'use strict';
// The test harness of the wx.* shim: a real mpsandbox binary started per test
// file, and a fake mini-program framework (wx or my, getApp, getCurrentPages,
// a page stack) whose request goes over real HTTP with fetch. No test lives
// here; `node --test sdk/test/` loads it as a file without tests.

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');

const ROOT = path.resolve(__dirname, '..', '..');
const SHIM = path.join(ROOT, 'sdk', 'mpsandbox-wx.js');
const ACT_PAGE = path.join(ROOT, 'sdk', 'pages', 'mpsandbox-act', 'index.js');
const DEMO_MCHID = '1230000109';

/**
 * startSandbox runs the binary named by MPSANDBOX_BIN (make sdk-test builds
 * it), or bin/mpsandbox, on a free loopback port in memory, and resolves
 * once it logs ready. It stops after t, or at s.stop() without a t.
 */
async function startSandbox(t) {
  const bin = process.env.MPSANDBOX_BIN || path.join(ROOT, 'bin', 'mpsandbox');
  if (!fs.existsSync(bin)) {
    throw new Error(`no mpsandbox binary at ${bin}: run "make sdk-test", or "make build", or set MPSANDBOX_BIN`);
  }
  const child = spawn(bin, ['--addr', '127.0.0.1:0', '--in-memory', '--log-format', 'json', '--access-log=false'], {
    // Only what the binary needs: no MPSANDBOX_* of the caller leaks in.
    env: { PATH: process.env.PATH, HOME: process.env.HOME || '/tmp' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const logs = [];
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('mpsandbox did not log ready within 15s:\n' + logs.join('\n'))), 15000);
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      logs.push(line);
      let rec;
      try {
        rec = JSON.parse(line);
      } catch (e) {
        return;
      }
      if (rec.msg === 'ready') {
        clearTimeout(timer);
        resolve(rec.addr);
      }
    });
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`mpsandbox exited with ${code} before ready:\n${logs.join('\n')}`));
    });
  });
  const s = new Sandbox(`http://${addr}`, logs);
  s.stop = async () => {
    child.kill('SIGTERM');
    const { code } = await exited;
    if (code !== 0) {
      throw new Error(`mpsandbox exited with ${code} after SIGTERM:\n${logs.slice(-20).join('\n')}`);
    }
  };
  if (t) {
    t.after(s.stop);
  }
  return s;
}

/** Sandbox is a running mpsandbox seen from the outside. */
class Sandbox {
  constructor(url, logs) {
    this.url = url;
    this.logs = logs;
    this.creds = null;
  }

  /** json sends a JSON request and returns {status, body}, failing on another status than want. */
  async json(method, p, body, want) {
    const res = await fetch(this.url + p, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (want !== undefined && res.status !== want) {
      throw new Error(`${method} ${p}: got HTTP ${res.status}, want ${want}: ${text}`);
    }
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  async credentials() {
    if (!this.creds) {
      this.creds = (await this.json('GET', `/sandbox/v1/merchants/${DEMO_MCHID}/credentials`, undefined, 200)).body;
    }
    return this.creds;
  }

  /** advance moves the demo merchant's sandbox clock. */
  async advance(by) {
    await this.json('POST', '/sandbox/v1/clock/advance', { mchid: DEMO_MCHID, by }, 200);
  }

  async resolve(sessionID, action) {
    return (await this.json('POST', `/sandbox/v1/sessions/${sessionID}/resolve`, { action }, 200)).body;
  }

  async session(sessionID) {
    return (await this.json('GET', `/sandbox/v1/sessions/${sessionID}`, undefined, 200)).body;
  }

  /** vehicleUser is the openid of one of the demo merchant's fixture users in a state. */
  async vehicleUser(state) {
    const { body } = await this.json('GET', `/sandbox/v1/vehicle-users?mchid=${DEMO_MCHID}&user_state=${state}`, undefined, 200);
    if (!body.users || !body.users.length) {
      throw new Error(`no ${state} vehicle user: ${JSON.stringify(body)}`);
    }
    return body.users[0].openid;
  }

  /** prepare is P云 trade-prepare, MD5-signed as SOURCES.md §8 says; it returns the pay_id. */
  async prepare(payOrder, value) {
    const c = await this.credentials();
    const params = {
      app_id: c.pcloud_app_id, merchant: c.pcloud_merchant, pay_order: payOrder, subject: '停车支付', value,
      notify_url: 'http://127.0.0.1:9/notify', trade_scene: 'GENERIC', timestamp: String(Date.now()), sign_type: 'MD5',
    };
    params.sign = pcloudSign(params, c.pcloud_app_secret);
    const res = await fetch(this.url + '/gate/1.0/payment/trade/prepare', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(params).toString(),
    });
    const out = await res.json();
    if (out.code !== '1001') {
      throw new Error(`prepare ${payOrder}: ${JSON.stringify(out)}`);
    }
    return out.pay_id;
  }

  /**
   * payScoreOrder creates a pay-score service order with a v3 request signed
   * with the merchant key (SOURCES.md §1) and returns the extraData the
   * merchant's backend hands its mini-program, signed with the API v2 key
   * (SOURCES.md §2).
   */
  async payScoreOrder(outOrderNo) {
    const c = await this.credentials();
    const p = '/v3/payscore/serviceorder';
    const body = JSON.stringify({
      out_order_no: outOrderNo, appid: c.appid, service_id: c.service_id, service_introduction: '停车服务',
      post_payments: [{ name: '停车费', amount: 1500, count: 1 }], time_range: { start_time: 'OnAccept' },
      risk_fund: { name: 'ESTIMATE_ORDER_COST', amount: 5000 }, notify_url: 'http://127.0.0.1:9/notify',
    });
    const ts = String(Math.floor(Date.now() / 1000));
    const nonce = crypto.randomBytes(16).toString('hex');
    const signature = crypto.createSign('RSA-SHA256').update(`POST\n${p}\n${ts}\n${nonce}\n${body}\n`).sign(c.merchant_private_key_pem, 'base64');
    const res = await fetch(this.url + p, {
      method: 'POST',
      headers: {
        'content-type': 'application/json', accept: 'application/json',
        authorization: `WECHATPAY2-SHA256-RSA2048 mchid="${c.mchid}",nonce_str="${nonce}",timestamp="${ts}",serial_no="${c.merchant_serial_no}",signature="${signature}"`,
      },
      body,
    });
    const order = await res.json();
    if (res.status !== 200 || order.state !== 'CREATED') {
      throw new Error(`create ${outOrderNo}: HTTP ${res.status} ${JSON.stringify(order)}`);
    }
    const ed = { mch_id: c.mchid, package: order.package, timestamp: ts, nonce_str: crypto.randomBytes(12).toString('hex'), sign_type: 'HMAC-SHA256' };
    ed.sign = v2Sign(ed, c.api_v2_key, 'HMAC-SHA256');
    return ed;
  }

  /**
   * paymentArgs is what a host's beforeRequestPayment hands back: the five
   * fields with an RSA paySign over appId\ntimeStamp\nnonceStr\npackage\n
   * (SOURCES.md §5).
   */
  async paymentArgs(nonce) {
    const c = await this.credentials();
    const ts = String(Math.floor(Date.now() / 1000));
    const pkg = 'prepay_id=wx' + crypto.randomBytes(12).toString('hex');
    const paySign = crypto.createSign('RSA-SHA256').update(`${c.appid}\n${ts}\n${nonce}\n${pkg}\n`).sign(c.merchant_private_key_pem, 'base64');
    return { timeStamp: ts, nonceStr: nonce, package: pkg, signType: 'RSA', paySign };
  }
}

/** v2Sign is WeChat Pay's v2 rule: non-empty keys but sign, sorted, &key=, upper-case hex. */
function v2Sign(params, key, type) {
  const s = Object.keys(params).filter((k) => k !== 'sign' && params[k] !== '').sort().map((k) => `${k}=${params[k]}`).join('&') + `&key=${key}`;
  const h = type === 'MD5' ? crypto.createHash('md5') : crypto.createHmac('sha256', key);
  return h.update(s).digest('hex').toUpperCase();
}

/** pcloudSign is P云's: non-empty parameters but sign, sorted, &app_secret=, MD5 upper-case hex. */
function pcloudSign(params, secret) {
  const s = Object.keys(params).filter((k) => k !== 'sign' && params[k] !== '').sort().map((k) => `${k}=${params[k]}`).join('&') + `&app_secret=${secret}`;
  return crypto.createHash('md5').update(s).digest('hex').toUpperCase();
}

/** loadActPage runs sdk/pages/mpsandbox-act/index.js with a Page() that captures its config. */
function loadActPage() {
  let config = null;
  // eslint-disable-next-line no-new-func
  new Function('Page', fs.readFileSync(ACT_PAGE, 'utf8'))((c) => {
    config = c;
  });
  return config;
}

/**
 * fakeMiniProgram is the framework around a mini-program: the wx (or my)
 * object with the APIs the shim reads and wraps, the App instance, and a
 * page stack driven by navigateTo/redirectTo/navigateBack that calls the
 * pages' lifecycle hooks. events records, in order, every lifecycle call.
 */
function fakeMiniProgram(opts) {
  const o = Object.assign({ alipay: false, envVersion: 'develop', platform: 'android', version: '8.0.50', SDKVersion: '3.4.0', modern: true }, opts);
  const events = [];
  const requests = [];
  const realCalls = [];
  const frameworkListeners = { show: [], hide: [] };
  const pageConfigs = Object.assign(
    { 'pages/index/index': {}, 'pages/login/login': {}, 'pages/mpsandbox-act/index': loadActPage() },
    o.pages || {},
  );
  const stack = [];

  const app = {
    shows: [],
    onShow(options) {
      events.push('app.onShow');
      this.shows.push(options);
    },
    onHide() {
      events.push('app.onHide');
    },
  };

  function later(fn) {
    setImmediate(fn);
  }

  function parseURL(url) {
    const [p, q] = url.split('?');
    const query = {};
    if (q) {
      for (const pair of q.split('&')) {
        const [k, v = ''] = pair.split('=');
        // Query values reach onLoad still percent-encoded, as in WeChat.
        query[k] = v;
      }
    }
    return { route: p.replace(/^\/+/, ''), query };
  }

  function hook(page, name, arg) {
    events.push(`${page.route}.${name}`);
    if (typeof page.config[name] === 'function') {
      page.config[name].call(page, arg);
    }
  }

  function makePage(route, options) {
    const config = pageConfigs[route];
    const page = {
      route, options, config,
      data: JSON.parse(JSON.stringify(config.data || {})),
      setData(d) {
        Object.assign(this.data, d);
      },
    };
    for (const name of ['onShow', 'onHide']) {
      page[name] = () => hook(page, name);
    }
    return page;
  }

  function open(route, query) {
    const page = makePage(route, query);
    stack.push(page);
    hook(page, 'onLoad', query);
    hook(page, 'onShow');
    return page;
  }

  function route(kind, args, change) {
    const a = args || {};
    realCalls.push({ api: kind, args: a });
    const { route: r, query } = parseURL(String(a.url || ''));
    later(() => {
      if (kind !== 'navigateBack' && !pageConfigs[r]) {
        const res = { errMsg: `${kind}:fail page "${r}" is not found` };
        if (a.fail) a.fail(res);
        if (a.complete) a.complete(res);
        return;
      }
      change(r, query);
      const res = { errMsg: `${kind}:ok` };
      if (a.success) a.success(res);
      if (a.complete) a.complete(res);
    });
  }

  function forbidden(name) {
    return function (args) {
      realCalls.push({ api: name, args });
    };
  }

  const api = {
    getAccountInfoSync() {
      if (o.noAccountInfo) {
        throw new Error('getAccountInfoSync is not a function');
      }
      return { miniProgram: { appId: o.appId, envVersion: o.envVersion, version: '' } };
    },
    navigateTo(args) {
      route('navigateTo', args, (r, query) => {
        hook(stack[stack.length - 1], 'onHide');
        open(r, query);
      });
    },
    redirectTo(args) {
      route('redirectTo', args, (r, query) => {
        hook(stack.pop(), 'onUnload');
        open(r, query);
      });
    },
    navigateBack(args) {
      route('navigateBack', args, () => {
        hook(stack.pop(), 'onUnload');
        hook(stack[stack.length - 1], 'onShow');
      });
    },
    onAppShow(fn) {
      frameworkListeners.show.push(fn);
    },
    offAppShow(fn) {
      frameworkListeners.show = fn ? frameworkListeners.show.filter((f) => f !== fn) : [];
    },
    onAppHide(fn) {
      frameworkListeners.hide.push(fn);
    },
    offAppHide(fn) {
      frameworkListeners.hide = fn ? frameworkListeners.hide.filter((f) => f !== fn) : [];
    },
    openEmbeddedMiniProgram: forbidden('openEmbeddedMiniProgram'),
    request(args) {
      const ctrl = new AbortController();
      const timer = args.timeout ? setTimeout(() => ctrl.abort(), args.timeout) : null;
      const headers = (o.alipay ? args.headers : args.header) || {};
      requests.push({ method: args.method || 'GET', url: args.url, headers, body: args.data === undefined ? undefined : JSON.parse(args.data) });
      fetch(args.url, { method: args.method || 'GET', headers, body: args.data, signal: ctrl.signal })
        .then(async (res) => {
          clearTimeout(timer);
          const text = await res.text();
          let data = text;
          if ((args.dataType || 'json') === 'json') {
            try {
              data = JSON.parse(text);
            } catch (e) {
              // WeChat leaves a body that is not JSON as text
            }
          }
          if (o.alipay) {
            if (res.status >= 200 && res.status < 300) {
              args.success({ status: res.status, data, headers: Object.fromEntries(res.headers) });
            } else {
              // my.request fails an HTTP error but carries the answer.
              args.fail({ error: 19, errorMessage: 'http status error', status: res.status, data });
            }
            return;
          }
          args.success({ statusCode: res.status, data, header: Object.fromEntries(res.headers), errMsg: 'request:ok' });
        })
        .catch((e) => {
          clearTimeout(timer);
          const why = ctrl.signal.aborted ? 'abort' : e.cause ? e.cause.code || e.message : e.message;
          args.fail(o.alipay ? { error: 12, errorMessage: why } : { errMsg: `request:fail ${why}` });
        });
      return { abort: () => ctrl.abort() };
    },
  };
  if (o.alipay) {
    api.getSystemInfoSync = () => ({ platform: 'iOS', version: '10.5.36', SDKVersion: '2.9.11' });
  } else {
    api.navigateToMiniProgram = forbidden('navigateToMiniProgram');
    api.openBusinessView = forbidden('openBusinessView');
    if (o.modern) {
      api.getAppBaseInfo = () => ({ SDKVersion: o.SDKVersion, version: o.version });
      api.getDeviceInfo = () => ({ platform: o.platform });
    } else {
      api.getSystemInfoSync = () => ({ platform: o.platform, version: o.version, SDKVersion: o.SDKVersion });
    }
  }
  open('pages/index/index', {});
  events.length = 0;
  return {
    api, app, events, requests, realCalls, frameworkListeners, stack,
    getApp: () => app,
    getCurrentPages: () => stack.slice(),
    top: () => stack[stack.length - 1],
    /** real lists the calls that reached the framework's own API, by name. */
    real: (name) => realCalls.filter((c) => c.api === name),
  };
}

/** quietLogger records what the shim logs instead of printing it. */
function quietLogger() {
  const lines = { error: [], warn: [], info: [] };
  return {
    lines,
    error: (...a) => lines.error.push(a.join(' ')),
    warn: (...a) => lines.warn.push(a.join(' ')),
    info: (...a) => lines.info.push(a.join(' ')),
    log: (...a) => lines.info.push(a.join(' ')),
  };
}

/** callback calls fn(args + success/fail/complete) and resolves {kind, res, completed}. */
function callback(fn, args) {
  return new Promise((resolve) => {
    let first = null;
    const returned = fn(
      Object.assign({}, args, {
        success: (res) => {
          first = { kind: 'success', res };
        },
        fail: (res) => {
          first = { kind: 'fail', res };
        },
        complete: (res) => resolve(Object.assign({ completed: res, returned }, first)),
      }),
    );
  });
}

/** settle resolves {kind, res} from the Promise form. */
function settle(p) {
  return p.then((res) => ({ kind: 'success', res }), (res) => ({ kind: 'fail', res }));
}

/** forms calls a wrapped API in each of its two forms and resolves {kind, res, …}. */
const forms = {
  callback: (fn, args) => callback(fn, args),
  promise: (fn, args) => settle(fn(args)),
};

/**
 * until polls cond every 5 ms for up to 5 s: the framework's navigation
 * callbacks come on a later turn, after the shim has called them.
 */
async function until(cond) {
  for (let i = 0; i < 1000; i++) {
    if (cond()) {
      return;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('condition never held: ' + cond.toString());
}

/** loadShim requires a fresh copy of the shim (no handle of another test). */
function loadShim() {
  delete require.cache[require.resolve(SHIM)];
  return require(SHIM);
}

module.exports = {
  ROOT, SHIM, DEMO_MCHID, startSandbox, fakeMiniProgram, quietLogger, callback, settle, forms, until, loadShim, v2Sign, pcloudSign,
};
