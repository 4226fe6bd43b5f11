/**
 * mpsandbox-wx.js — the wx.* shim of mpsandbox.
 *
 * A develop or trial build of a merchant's mini-program requires this file in
 * app.js and calls install() before App(): from then on its jumps
 * (wx.openBusinessView, wx.navigateToMiniProgram, wx.openEmbeddedMiniProgram,
 * Alipay's my.openEmbeddedMiniProgram), its plugin://issuer-plugin/… pages,
 * requirePlugin('issuer-plugin') and the payment functional page reach the
 * mpsandbox server at baseURL instead of WeChat, and the way back arrives as
 * WeChat delivers it: App.onShow and wx.onAppShow listeners receive
 * {scene: 1038, referrerInfo: {appId, extraData}}.
 *
 * CommonJS, no dependency, ES2017. Served by the sandbox at
 * GET /sdk/mpsandbox-wx.js; the source and its README are in sdk/ of the
 * mpsandbox repository. "[I]" marks a behaviour the sandbox infers rather
 * than copies (docs: sdk/README.md); "SOURCES.md §n" names the source of a
 * copied one.
 */
'use strict';

/** The shim's version; it follows the /miniprogram/v1 contract. */
const VERSION = '1.0.0';

// A caller that comes back from another mini-program sees scene 1038
// (SOURCES.md §4, App.onShow).
const SCENE_BACK = 1038;
const ISSUER_ALIAS = 'issuer-plugin';
// The plugin's getters, getSignCarServiceResule's typo included (the plugin guide;
// SOURCES.md §9). Their values before any page set them are the plugin guide's
// examples [I], the values the sandbox answers for an unset getter.
const ISSUER_INITIAL = {
  getActiveResult: { state: 2, obu: '', card: '' },
  getSignProResult: { state: 1 },
  getSignCarServiceResule: { state: 1 },
};
// caller.platform values the contract knows (schema miniprogram/call).
const PLATFORMS = ['ios', 'android', 'ohos', 'devtools', 'windows', 'mac'];
const ENV_VERSIONS = ['develop', 'trial', 'release'];
const VERSION_PATTERN = /^[0-9]+(\.[0-9]+){1,3}$/;
const DEFAULT_ACT_PAGE = '/pages/mpsandbox-act/index';
const DEFAULT_WAIT_SECONDS = 10;
// Consecutive failed polls of a return before the shim gives up on it.
const MAX_POLL_FAILURES = 8;
const CALL_TIMEOUT_MS = 15000;
// The sessions a handle remembers: a QA run of a day stays bounded.
const MAX_SESSIONS = 100;

// The handle of the latest install, so that requirePlugin() exported by the
// module finds the stand-in wherever the merchant's code calls it.
let current = null;

/**
 * Wraps wx (or my) so that the simulated jumps reach mpsandbox.
 *
 * @param {object} options
 * @param {string} options.baseURL the sandbox, e.g. "http://192.168.1.20:8080"
 * @param {string} [options.scenario] a scenario id sent with every call (caller.scenario)
 * @param {object} [options.appJson] the app.json facts the sandbox checks: plugins,
 *   functionalPages, embeddedAppIdList, navigateToMiniProgramAppIdList
 * @param {string} [options.appId] the sandbox merchant's appid to call as, instead of
 *   getAccountInfoSync().miniProgram.appId (an Alipay build needs it)
 * @param {Function} [options.beforeRequestPayment] the export of functional-pages/request-payment.js
 * @param {string} [options.actPage] the web-view page the shim opens for a manual session
 * @param {Function} [options.actURL] sessionId → the URL the web-view shows (default baseURL/act/{id})
 * @param {Function} [options.passThrough] (api, args) → true to let a call reach the real API
 * @param {number} [options.wait] seconds of each long poll of a return (default 10)
 * @param {object} [options.wx] the object to wrap (default: the global wx)
 * @param {object} [options.my] an Alipay my object to wrap instead
 * @param {Function} [options.getApp] default: the global getApp
 * @param {Function} [options.getCurrentPages] default: the global getCurrentPages
 * @param {object} [options.logger] console-like; default console
 * @returns {Sandbox} the handle; handle.installed is false when install refused
 */
function install(options) {
  const o = options || {};
  const logger = o.logger || console;
  const alipay = Boolean(o.my) || (!o.wx && !globalWx() && Boolean(globalMy()));
  const api = o.my || o.wx || globalWx() || globalMy();
  const ns = alipay ? 'my' : 'wx';
  if (!api || typeof api !== 'object') {
    throw new TypeError('mpsandbox: there is no wx (or my) object to wrap; pass install({wx})');
  }
  const facts = readCaller(api, alipay, o);
  // A build that could reach users never talks to the sandbox: install
  // steps aside, leaving the real API in place, and says why.
  if (facts.refusal) {
    logger.error(facts.refusal);
    return refused(facts.refusal);
  }
  if (typeof o.baseURL !== 'string' || !/^https?:\/\/[^/]+/.test(o.baseURL)) {
    throw new TypeError('mpsandbox: install needs baseURL, the sandbox address, e.g. "http://192.168.1.20:8080"');
  }
  if (!facts.caller.appId) {
    throw new TypeError('mpsandbox: cannot read the appId from ' + ns + '.getAccountInfoSync(); pass install({appId})');
  }
  if (current) {
    current.uninstall();
  }
  const sandbox = new Sandbox(api, alipay, o, facts.caller, logger);
  current = sandbox;
  return sandbox;
}

/**
 * requirePlugin('issuer-plugin') that reaches the sandbox once install ran,
 * and the real requirePlugin otherwise (a release build, or another plugin).
 * Exported as requirePlugin; named otherwise so that it does not hide the
 * framework's own requirePlugin from this module.
 */
function sandboxRequirePlugin(alias) {
  if (current) {
    return current.requirePlugin(alias);
  }
  return realRequirePlugin(alias);
}

function realRequirePlugin(alias) {
  const real = globalRequirePlugin();
  if (real) {
    return real(alias);
  }
  throw new Error('mpsandbox: requirePlugin("' + alias + '") is not available here and the shim is not installed');
}

// The mini-program globals are read with typeof, since the framework may
// inject them per module rather than on the global object.
function globalWx() {
  // eslint-disable-next-line no-undef
  return typeof wx === 'object' && wx ? wx : undefined;
}

function globalMy() {
  // eslint-disable-next-line no-undef
  return typeof my === 'object' && my ? my : undefined;
}

function globalGetApp() {
  // eslint-disable-next-line no-undef
  return typeof getApp === 'function' ? getApp : undefined;
}

function globalGetCurrentPages() {
  // eslint-disable-next-line no-undef
  return typeof getCurrentPages === 'function' ? getCurrentPages : undefined;
}

function globalRequirePlugin() {
  // eslint-disable-next-line no-undef
  return typeof requirePlugin === 'function' ? requirePlugin : undefined;
}

/**
 * readCaller gathers what the sandbox is told about the caller: the
 * account (appId, envVersion) and the client (platform, WeChat version,
 * base library), preferring the APIs that replaced getSystemInfoSync.
 */
function readCaller(api, alipay, o) {
  const ns = alipay ? 'my' : 'wx';
  const account = attempt(() => api.getAccountInfoSync());
  const mp = (account && account.miniProgram) || {};
  const env = mp.envVersion;
  if (typeof env !== 'string' || env === '') {
    return { refusal: 'mpsandbox: install refused: ' + ns + '.getAccountInfoSync().miniProgram.envVersion cannot be read, so this could be a release build; the shim only runs in develop and trial builds' };
  }
  // Alipay's grey release reaches users too [I].
  if (env === 'release' || env === 'gray') {
    return { refusal: 'mpsandbox: install refused: this is a ' + env + ' build (envVersion "' + env + '"); the sandbox shim only runs in develop and trial builds. Remove install() from app.js before you release.' };
  }
  let base = {};
  let device = {};
  if (!alipay) {
    base = attempt(() => api.getAppBaseInfo()) || {};
    device = attempt(() => api.getDeviceInfo()) || {};
  }
  if (!base.SDKVersion || !device.platform) {
    const sys = attempt(() => api.getSystemInfoSync()) || {};
    base = { SDKVersion: base.SDKVersion || sys.SDKVersion, version: base.version || sys.version };
    device = { platform: device.platform || sys.platform };
  }
  const caller = { appId: o.appId || mp.appId || '' };
  const platform = alipay ? 'alipay' : String(device.platform || '').toLowerCase();
  if (alipay || PLATFORMS.indexOf(platform) >= 0) {
    caller.platform = platform;
  }
  // An Alipay client's version is not a WeChat version.
  if (!alipay && VERSION_PATTERN.test(String(base.version || ''))) {
    caller.wechatVersion = String(base.version);
  }
  if (VERSION_PATTERN.test(String(base.SDKVersion || ''))) {
    caller.sdkVersion = String(base.SDKVersion);
  }
  if (ENV_VERSIONS.indexOf(env) >= 0) {
    caller.envVersion = env;
  }
  if (o.appJson && typeof o.appJson === 'object') {
    caller.appJson = o.appJson;
  }
  if (o.scenario) {
    caller.scenario = String(o.scenario);
  }
  return { caller: caller };
}

function attempt(fn) {
  try {
    return fn();
  } catch (e) {
    return undefined;
  }
}

/** refused is the handle of an install that stepped aside. */
function refused(reason) {
  return {
    installed: false,
    reason: reason,
    version: VERSION,
    requirePlugin: realRequirePlugin,
    requestPluginPayment: function () {
      throw new Error(reason);
    },
    setScenario: function () {},
    sessions: [],
    lastSession: null,
    idle: function () {
      return Promise.resolve();
    },
    uninstall: function () {},
  };
}

/**
 * Sandbox is an installed shim: the wrapped API, the sessions it follows
 * until the user comes back, and the issuer plugin's stand-in.
 */
class Sandbox {
  constructor(api, alipay, o, caller, logger) {
    this.installed = true;
    this.version = VERSION;
    this.api = api;
    this.alipay = alipay;
    this.ns = alipay ? 'my' : 'wx';
    this.baseURL = o.baseURL.replace(/\/+$/, '');
    this.caller = caller;
    this.logger = logger;
    this.wait = o.wait > 0 ? Math.min(Number(o.wait), 60) : DEFAULT_WAIT_SECONDS;
    this.beforeRequestPayment = o.beforeRequestPayment;
    this.actPage = '/' + String(o.actPage || DEFAULT_ACT_PAGE).replace(/^\/+/, '');
    this.actURL = typeof o.actURL === 'function' ? o.actURL : (id) => this.baseURL + '/act/' + encodeURIComponent(id);
    this.passThrough = typeof o.passThrough === 'function' ? o.passThrough : () => false;
    this.getApp = o.getApp || globalGetApp();
    this.getCurrentPages = o.getCurrentPages || globalGetCurrentPages();
    /** The sessions this install launched, oldest first (the latest MAX_SESSIONS). */
    this.sessions = [];
    this.closed = false;
    this.navigating = false;
    this.follows = new Set();
    this.tasks = new Set();
    this.timers = new Set();
    this.listeners = { show: [], hide: [] };
    this.results = clone(ISSUER_INITIAL);
    this.issuerPlugin = this.makeIssuerPlugin();
    // What install found on the object, and the names it replaced.
    this.originals = {};
    this.wrapped = [];
    this.wrapAll();
  }

  /** The latest session, or null. */
  get lastSession() {
    return this.sessions.length ? this.sessions[this.sessions.length - 1] : null;
  }

  /** Changes the scenario sent with the next calls ("" for none). */
  setScenario(id) {
    if (id) {
      this.caller.scenario = String(id);
    } else {
      delete this.caller.scenario;
    }
  }

  /**
   * requirePlugin stand-in: the issuer plugin's getters read the latest
   * plugin session's results; any other alias is the real plugin.
   */
  requirePlugin(alias) {
    if (alias === ISSUER_ALIAS) {
      return this.issuerPlugin;
    }
    return realRequirePlugin(alias);
  }

  /** Resolves once every session launched so far has come back (or was given up). */
  idle() {
    const pending = Array.from(this.follows);
    if (!pending.length) {
      return Promise.resolve();
    }
    return Promise.all(pending).then(() => this.idle());
  }

  /** Restores the original API and stops following sessions. */
  uninstall() {
    if (this.closed) {
      return;
    }
    this.closed = true;
    for (const name of this.wrapped) {
      const was = this.originals[name];
      if (was.own) {
        define(this.api, name, was.value);
      } else {
        delete this.api[name];
      }
    }
    for (const task of this.tasks) {
      attempt(() => task.abort());
    }
    for (const t of this.timers) {
      clearTimeout(t.id);
      t.resolve();
    }
    this.timers.clear();
    if (current === this) {
      current = null;
    }
  }

  /**
   * requestPluginPayment plays WeChat between a plugin that takes a payment
   * and the host's payment functional page (SOURCES.md §5): it calls the
   * host's beforeRequestPayment(paymentArgs, callback) and has the sandbox
   * check and pay what the callback hands back. The result is the payment's:
   * requestPayment:ok, requestPayment:fail cancel or requestPayment:fail <detail>.
   */
  requestPluginPayment(args) {
    const a = args || {};
    const name = 'requestPayment';
    return this.callForm(name, a, async () => {
      const before = this.beforeRequestPayment;
      if (typeof before !== 'function') {
        // What WeChat answers when the host has no functional page (SOURCES.md §5).
        return failure(name, 'callMiniProgramFunction:fail File not found: functional-pages/request-payment.js (pass install({beforeRequestPayment: require(\'./functional-pages/request-payment\').beforeRequestPayment}))');
      }
      let pay;
      try {
        pay = await new Promise((resolve, reject) => {
          before(a.paymentArgs, (error, requestPaymentArgs) => (error ? reject(error) : resolve(requestPaymentArgs)));
        });
      } catch (e) {
        // [I] the callback's error ends the payment with its message.
        return failure(name, reason(e));
      }
      if (!pay || typeof pay !== 'object') {
        return failure(name, 'beforeRequestPayment called back without the payment arguments');
      }
      const out = await this.launch(name, name, pay);
      if (!out.ok || out.session.state !== 'pending') {
        return out;
      }
      // A manual payment sheet: the outcome is the session's return.
      const ret = await this.follow(out.session, 'payment');
      if (!ret || typeof ret.errMsg !== 'string') {
        return failure(name, 'the payment of session ' + out.session.id + ' did not come back');
      }
      return { ok: /:ok$/.test(ret.errMsg), res: { errMsg: ret.errMsg } };
    });
  }

  // --- wrapping ---------------------------------------------------------

  wrapAll() {
    const api = this.api;
    for (const name of ['navigateTo', 'redirectTo', 'navigateBack', 'request', 'onAppShow', 'offAppShow', 'onAppHide', 'offAppHide']) {
      this.originals[name] = { own: Object.prototype.hasOwnProperty.call(api, name), value: api[name] };
    }
    // The contract's API names are WeChat's (POST /miniprogram/v1/{api}).
    const jumps = this.alipay ? ['openEmbeddedMiniProgram'] : ['navigateToMiniProgram', 'openBusinessView', 'openEmbeddedMiniProgram'];
    for (const name of jumps) {
      this.wrap(name, this.jump(name));
    }
    if (!this.alipay) {
      this.wrap('navigateTo', this.pluginNavigate());
    }
    this.wrap('onAppShow', this.listen('show', 'onAppShow', true));
    this.wrap('offAppShow', this.listen('show', 'offAppShow', false));
    this.wrap('onAppHide', this.listen('hide', 'onAppHide', true));
    this.wrap('offAppHide', this.listen('hide', 'offAppHide', false));
  }

  wrap(name, fn) {
    if (!this.originals[name]) {
      this.originals[name] = { own: Object.prototype.hasOwnProperty.call(this.api, name), value: this.api[name] };
    }
    this.wrapped.push(name);
    define(this.api, name, fn);
  }

  original(name) {
    const was = this.originals[name];
    return was && typeof was.value === 'function' ? was.value : null;
  }

  callOriginal(name, args) {
    const fn = this.original(name);
    if (!fn) {
      return undefined;
    }
    return fn.call(this.api, args);
  }

  /** jump wraps an API that opens another mini-program. */
  jump(name) {
    const shim = this;
    return function (args) {
      const a = args || {};
      if (shim.passThrough(name, a) && shim.original(name)) {
        return shim.callOriginal(name, a);
      }
      return shim.callForm(name, a, async () => {
        // A second jump while one is under way (SOURCES.md §2,
        // openBusinessView:fail another navigation is in progress; the
        // same for every jump [I]).
        if (shim.navigating) {
          return failure(name, 'another navigation is in progress');
        }
        shim.navigating = true;
        let out;
        try {
          out = await shim.launch(name, name, a);
        } finally {
          shim.navigating = false;
        }
        if (out.ok) {
          out.after = () => shim.follow(out.session, 'app');
        }
        return out;
      });
    };
  }

  /** pluginNavigate wraps wx.navigateTo: plugin://issuer-plugin/… pages go to the sandbox. */
  pluginNavigate() {
    const shim = this;
    return function (args) {
      const a = args || {};
      const url = typeof a.url === 'string' ? a.url : '';
      if (url.indexOf('plugin://' + ISSUER_ALIAS + '/') !== 0 || shim.passThrough('navigateTo', a)) {
        return shim.callOriginal('navigateTo', a);
      }
      return shim.callForm('navigateTo', a, async () => {
        const out = await shim.launch('plugin/navigate', 'navigateTo', a);
        if (out.ok) {
          out.after = () => shim.follow(out.session, 'plugin');
        }
        return out;
      });
    };
  }

  /** listen wraps wx.onAppShow / offAppShow (and the hide pair). */
  listen(kind, name, on) {
    const shim = this;
    return function (fn) {
      const list = shim.listeners[kind];
      if (on) {
        if (typeof fn === 'function') {
          list.push(fn);
        }
      } else if (typeof fn === 'function') {
        const i = list.indexOf(fn);
        if (i >= 0) {
          list.splice(i, 1);
        }
      } else {
        // Without a listener, off removes them all, as WeChat's does.
        list.length = 0;
      }
      return shim.callOriginal(name, fn);
    };
  }

  // --- calls ------------------------------------------------------------

  /**
   * callForm runs task and answers in the caller's form: success/fail/
   * complete when any is given, otherwise a Promise that resolves with the
   * success result and rejects with the fail result, as WeChat's
   * promisified APIs do. task resolves {ok, res, after?}; after runs once
   * the caller has seen the result.
   */
  callForm(name, args, task) {
    const pick = (k) => (typeof args[k] === 'function' ? args[k] : null);
    const success = pick('success');
    const fail = pick('fail');
    const complete = pick('complete');
    const callbacks = Boolean(success || fail || complete);
    const settled = Promise.resolve()
      .then(task)
      .catch((e) => failure(name, reason(e)))
      .then((out) => {
        this.report(out);
        if (callbacks) {
          this.safely(out.ok ? success : fail, out.res);
          this.safely(complete, out.res);
        }
        return out;
      });
    // after runs on a later turn, once the caller's callbacks and promise
    // handlers have seen the result; idle() waits for it too.
    this.track(
      settled.then((out) => (out.after && !this.closed ? this.sleep(0).then(() => (this.closed ? null : out.after())) : null)),
    );
    if (callbacks) {
      return undefined;
    }
    return settled.then((out) => (out.ok ? out.res : Promise.reject(out.res)));
  }

  /** track keeps p in the set idle() waits on until it settles. */
  track(p) {
    const safe = p.then(
      () => undefined,
      (e) => this.logger.error('mpsandbox: ' + reason(e)),
    );
    this.follows.add(safe);
    safe.then(() => this.follows.delete(safe));
  }

  /**
   * report logs a call the sandbox refused or could not take, with every
   * problem, for the developer tools console or vConsole; an outcome of a
   * session (a cancelled payment) is not a problem.
   */
  report(out) {
    if (!out.ok && !out.session) {
      this.logger.warn('mpsandbox: ' + out.res.errMsg);
    }
  }

  /** launch posts one call to /miniprogram/v1/{path}. */
  async launch(path, name, args) {
    const body = { caller: this.caller, args: plain(args) };
    let res;
    try {
      res = await this.request('POST', '/miniprogram/v1/' + path, body, CALL_TIMEOUT_MS);
    } catch (e) {
      return failure(name, 'mpsandbox at ' + this.baseURL + ' is unreachable: ' + reason(e));
    }
    const data = res.data;
    if (!data || typeof data !== 'object' || typeof data.errMsg !== 'string') {
      return failure(name, 'mpsandbox at ' + this.baseURL + ' answered HTTP ' + res.status + ' without an errMsg: ' + String(res.raw).slice(0, 200));
    }
    const ok = res.status === 200 && data.errMsg === name + ':ok';
    const out = { ok: ok, res: { errMsg: data.errMsg } };
    if (!ok) {
      // The sandbox's extras: every problem with its path, and the
      // expected string-to-sign of a bad signature (secrets masked).
      for (const k of ['violations', 'diagnostics', 'request_id']) {
        if (data[k] !== undefined) {
          out.res[k] = data[k];
        }
      }
    }
    if (data.session_id) {
      out.session = { id: data.session_id, api: name, scenario: data.scenario, mode: data.mode, state: data.state, returned: null };
      this.sessions.push(out.session);
      if (this.sessions.length > MAX_SESSIONS) {
        this.sessions.shift();
      }
    }
    if (ok && !out.session) {
      return failure(name, 'mpsandbox answered without a session_id');
    }
    return out;
  }

  // --- the way back ------------------------------------------------------

  /**
   * follow waits for the user to come back from a session and delivers the
   * return as WeChat would for its kind: 'app' (another mini-program),
   * 'plugin' (a plugin page) or 'payment' (the payment sheet). It resolves
   * with the return, or null when the shim gave up.
   */
  follow(session, kind) {
    return this.away(session, kind).catch((e) => {
      this.logger.error('mpsandbox: session ' + session.id + ': ' + reason(e));
      return null;
    });
  }

  async away(session, kind) {
    const manual = session.mode === 'manual';
    if (kind === 'app') {
      // The caller goes to the background while the user is in the other
      // mini-program [I] (a half screen too).
      this.emit('hide', 'onHide');
    }
    let act = false;
    if (manual) {
      act = await this.openAct(session);
    }
    if (!act && kind !== 'payment') {
      this.pageHook('onHide');
    }
    const ret = await this.poll(session);
    if (!ret || this.closed) {
      return ret;
    }
    session.state = 'returned';
    session.returned = ret;
    if (kind === 'payment') {
      if (this.actOnTop()) {
        this.callOriginal('navigateBack', { delta: 1 });
      }
      return ret;
    }
    if (kind === 'plugin') {
      await this.readGetters(session);
      this.pluginBack(ret);
      return ret;
    }
    this.emit('show', 'onShow', this.showOptions(ret));
    if (this.actOnTop()) {
      // The framework shows the page under the act page again.
      this.callOriginal('navigateBack', { delta: 1 });
    } else {
      this.pageHook('onShow');
    }
    return ret;
  }

  /**
   * pluginBack leaves the plugin page the way the sandbox says: a
   * completed login redirects to redirectUrl, anything else goes back.
   */
  pluginBack(ret) {
    const onTop = this.actOnTop();
    if (ret.openType === 'redirectTo' && typeof ret.url === 'string') {
      const url = ret.url.charAt(0) === '/' ? ret.url : '/' + ret.url;
      // No plugin page is on the stack in an auto session, so the host
      // page is pushed: the stack ends as a redirect would leave it.
      this.callOriginal(onTop ? 'redirectTo' : 'navigateTo', { url: url });
      return;
    }
    if (onTop) {
      this.callOriginal('navigateBack', { delta: 1 });
    } else {
      this.pageHook('onShow');
    }
  }

  /** readGetters caches the plugin getters of the session that just came back. */
  async readGetters(session) {
    const names = Object.keys(ISSUER_INITIAL);
    const answers = await Promise.all(
      names.map((name) =>
        this.request('GET', '/miniprogram/v1/sessions/' + encodeURIComponent(session.id) + '/plugin/' + name, undefined, CALL_TIMEOUT_MS).then(
          (res) => res,
          (e) => ({ status: 0, data: null, raw: reason(e) }),
        ),
      ),
    );
    names.forEach((name, i) => {
      const res = answers[i];
      if (res.status === 200 && res.data && typeof res.data === 'object') {
        this.results[name] = res.data;
      } else if (session.api !== 'requestPayment') {
        this.logger.warn('mpsandbox: ' + name + ' of session ' + session.id + ': HTTP ' + res.status + ' ' + String(res.raw).slice(0, 200));
      }
    });
  }

  makeIssuerPlugin() {
    const shim = this;
    const getter = (name) => () => clone(shim.results[name]);
    return {
      getActiveResult: getter('getActiveResult'),
      getSignProResult: getter('getSignProResult'),
      getSignCarServiceResule: getter('getSignCarServiceResule'),
    };
  }

  /**
   * poll long-polls the session's return until it answers 200. A network
   * failure or a 5xx is retried with a growing pause; a 4xx ends it.
   */
  async poll(session) {
    const path = '/miniprogram/v1/sessions/' + encodeURIComponent(session.id) + '/return?wait=' + this.wait + 's';
    let failures = 0;
    while (!this.closed) {
      let res;
      try {
        res = await this.request('GET', path, undefined, (this.wait + 15) * 1000);
      } catch (e) {
        res = { status: 0, raw: reason(e) };
      }
      if (this.closed) {
        return null;
      }
      if (res.status === 200 && res.data && typeof res.data === 'object') {
        return res.data;
      }
      if (res.status === 202) {
        failures = 0;
        continue;
      }
      if (res.status >= 400 && res.status < 500) {
        session.state = 'lost';
        this.logger.error('mpsandbox: the return of session ' + session.id + ' failed: HTTP ' + res.status + ' ' + String(res.raw).slice(0, 300));
        return null;
      }
      failures++;
      if (failures >= MAX_POLL_FAILURES) {
        session.state = 'lost';
        this.logger.error('mpsandbox: gave up waiting for session ' + session.id + ' after ' + failures + ' failed polls: ' + String(res.raw).slice(0, 300));
        return null;
      }
      await this.sleep(Math.min(250 * Math.pow(2, failures), 10000));
    }
    return null;
  }

  /** showOptions completes the return with what App.onShow always has [I]. */
  showOptions(ret) {
    const opts = clone(ret);
    const page = this.hostPage();
    if (page && opts.path === undefined && page.route) {
      opts.path = page.route;
      opts.query = clone(page.options || {});
    }
    if (opts.scene === undefined) {
      opts.scene = SCENE_BACK;
    }
    return opts;
  }

  /** emit calls App.onShow/onHide, then the wx.onAppShow/onAppHide listeners. */
  emit(kind, hook, opts) {
    const app = this.getApp ? attempt(() => this.getApp()) : undefined;
    if (app && typeof app[hook] === 'function') {
      this.safely((o) => app[hook](o), kind === 'show' ? clone(opts) : undefined);
    }
    for (const fn of this.listeners[kind].slice()) {
      this.safely(fn, kind === 'show' ? clone(opts) : undefined);
    }
  }

  pages() {
    const pages = this.getCurrentPages ? attempt(() => this.getCurrentPages()) : null;
    return Array.isArray(pages) ? pages : [];
  }

  topPage() {
    const pages = this.pages();
    return pages.length ? pages[pages.length - 1] : null;
  }

  /** hostPage is the merchant's page on top, under the act page if it is open. */
  hostPage() {
    const pages = this.pages().filter((p) => !this.isAct(p));
    return pages.length ? pages[pages.length - 1] : null;
  }

  isAct(page) {
    return Boolean(page && '/' + String(page.route || '').replace(/^\/+/, '') === this.actPage);
  }

  pageHook(hook) {
    const page = this.topPage();
    if (page && typeof page[hook] === 'function') {
      this.safely(() => page[hook]());
    }
  }

  actOnTop() {
    return this.isAct(this.topPage());
  }

  /**
   * openAct shows the sandbox's act-as-the-user page for a manual session
   * in the web-view page. Without that page (not in app.json) the session
   * is still followed: a person can decide on the QA page.
   */
  openAct(session) {
    const url = this.actPage + '?session=' + encodeURIComponent(session.id) + '&url=' + encodeURIComponent(this.actURL(session.id));
    const why = 'add it to app.json pages, or decide session ' + session.id + ' on the QA page';
    if (!this.original('navigateTo')) {
      this.logger.warn('mpsandbox: cannot open ' + this.actPage + ' without ' + this.ns + '.navigateTo; ' + why);
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      this.callOriginal('navigateTo', {
        url: url,
        success: () => resolve(true),
        fail: (e) => {
          this.logger.warn('mpsandbox: cannot open ' + this.actPage + ' (' + reason(e) + '); ' + why);
          resolve(false);
        },
      });
    });
  }

  // --- transport ----------------------------------------------------------

  /**
   * request sends one HTTP request with the wrapped object's own request
   * (wx.request, or my.request whose names differ) and resolves
   * {status, data, raw}; it rejects only when no answer came.
   */
  request(method, path, body, timeout) {
    const send = this.original('request');
    if (!send) {
      return Promise.reject(new Error(this.ns + '.request is missing'));
    }
    return new Promise((resolve, reject) => {
      let task = null;
      const answer = (status, data) => {
        let parsed = data;
        if (typeof data === 'string') {
          parsed = attempt(() => JSON.parse(data));
        }
        resolve({ status: status, data: parsed, raw: typeof data === 'string' ? data : JSON.stringify(data) });
      };
      const req = {
        url: this.baseURL + path,
        method: method,
        dataType: 'json',
        timeout: timeout,
        success: (res) => {
          this.tasks.delete(task);
          answer(this.alipay ? res.status : res.statusCode, res.data);
        },
        fail: (err) => {
          this.tasks.delete(task);
          // my.request may fail a non-2xx answer yet carry it [I].
          if (err && typeof err.status === 'number' && err.status > 0 && err.data !== undefined) {
            answer(err.status, err.data);
            return;
          }
          reject(err);
        },
      };
      if (body !== undefined) {
        req.data = JSON.stringify(body);
        req[this.alipay ? 'headers' : 'header'] = { 'content-type': 'application/json' };
      }
      task = send.call(this.api, req);
      if (task && typeof task.abort === 'function') {
        this.tasks.add(task);
      }
    });
  }

  // --- helpers -------------------------------------------------------------

  safely(fn, arg) {
    if (typeof fn !== 'function') {
      return;
    }
    try {
      fn(arg);
    } catch (e) {
      // A merchant's callback that throws is its own bug; WeChat reports
      // it and carries on, and so does the shim.
      this.logger.error('mpsandbox: a callback threw: ' + reason(e));
    }
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const t = { id: null, resolve: resolve };
      t.id = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }
}

function define(obj, name, value) {
  try {
    obj[name] = value;
  } catch (e) {
    // a frozen or accessor property falls through to defineProperty
  }
  if (obj[name] !== value) {
    Object.defineProperty(obj, name, { value: value, writable: true, configurable: true, enumerable: true });
  }
}

function failure(name, why) {
  return { ok: false, res: { errMsg: name + ':fail ' + why } };
}

function reason(e) {
  if (e && typeof e === 'object') {
    return String(e.errMsg || e.errorMessage || e.message || JSON.stringify(e));
  }
  return String(e);
}

/** plain drops callbacks and anything else that cannot travel as JSON. */
function plain(args) {
  return JSON.parse(JSON.stringify(args, (k, v) => (typeof v === 'function' ? undefined : v)));
}

function clone(v) {
  return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
}

module.exports = { install: install, requirePlugin: sandboxRequirePlugin, VERSION: VERSION };
