'use strict';
// The issuer plugin against a real mpsandbox: plugin://issuer-plugin/…
// pages opened with wx.navigateTo, the way back (redirectTo redirectUrl, or
// back to the host page), requirePlugin('issuer-plugin')'s getters, and a
// payment through the host's functional page (beforeRequestPayment).

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startSandbox, fakeMiniProgram, quietLogger, settle, loadShim, forms, until } = require('./harness');

const PLUGINS = { 'issuer-plugin': { version: '1.0.0', provider: 'wx06bc6021dc900553' } };
const APP_JSON = { plugins: PLUGINS, functionalPages: true };
const MOBILE = '13912345678';
const LOGIN = `plugin://issuer-plugin/login?etcProductId=P1001&accountType=1&carType=0&redirectUrl=/pages/login/login&mobile=${MOBILE}`;
const INITIAL = {
  getActiveResult: { state: 2, obu: '', card: '' },
  getSignProResult: { state: 1 },
  getSignCarServiceResule: { state: 1 },
};

let s;
test.before(async () => {
  s = await startSandbox();
});
test.after(() => s.stop());

async function setup(t, install) {
  const creds = await s.credentials();
  const mp = fakeMiniProgram({ appId: creds.appid });
  const logger = quietLogger();
  const shim = loadShim();
  const sb = shim.install(Object.assign(
    { baseURL: s.url, wx: mp.api, getApp: mp.getApp, getCurrentPages: mp.getCurrentPages, logger, appJson: APP_JSON },
    install,
  ));
  t.after(() => sb.uninstall());
  return { mp, sb, logger, shim, creds };
}

/** getters reads the three getters the way a host page does, synchronously. */
function getters(plugin) {
  return {
    getActiveResult: plugin.getActiveResult(),
    getSignProResult: plugin.getSignProResult(),
    getSignCarServiceResule: plugin.getSignCarServiceResule(),
  };
}

test('wx.navigateTo a plugin://issuer-plugin/ page', async (t) => {
  for (const [form, call] of Object.entries(forms)) {
    await t.test(`ok, ${form} form: a login redirects to redirectUrl`, async (t) => {
      const { mp, sb } = await setup(t);
      const got = await call(mp.api.navigateTo, { url: LOGIN });
      assert.equal(got.kind, 'success');
      assert.deepEqual(got.res, { errMsg: 'navigateTo:ok' });
      assert.equal(sb.lastSession.api, 'navigateTo');
      assert.equal(mp.real('navigateTo').length, 0, 'the plugin URL reached the real navigateTo');

      await s.advance('2s');
      await sb.idle();
      await until(() => mp.top().route === 'pages/login/login');
      const [redirect] = mp.real('navigateTo');
      assert.match(redirect.args.url, /^\/pages\/login\/login\?openId=[^&]+&accessToken=[0-9a-f]{32}&orderNo=ETC\d+&plateNum=/);
      assert.equal(sb.lastSession.returned.openType, 'redirectTo');
      assert.equal(mp.top().options.accessToken, sb.lastSession.returned.query.accessToken, 'onLoad(query) gets the credential');
      assert.deepEqual(getters(sb.requirePlugin('issuer-plugin')), INITIAL, 'a login sets no getter');
    });

    await t.test(`fail, ${form} form: every problem of the URL at its parameter`, async (t) => {
      const { mp, sb } = await setup(t);
      const got = await call(mp.api.navigateTo, { url: 'plugin://issuer-plugin/login?etcProductId=P1&accountType=3&redirectUrl=/pages/a/a&mobile=' + MOBILE });
      assert.equal(got.kind, 'fail');
      assert.match(got.res.errMsg, /^navigateTo:fail /);
      assert.deepEqual(got.res.violations.map((v) => v.path).sort(), ['/args/url?accountType', '/args/url?carType']);
      await sb.idle();
      assert.deepEqual(mp.events, [], 'the host page never left');
    });
  }

  await t.test('other URLs go to the real navigateTo', async (t) => {
    const { mp } = await setup(t);
    const page = await settle(new Promise((resolve, reject) => mp.api.navigateTo({ url: '/pages/login/login?x=1', success: resolve, fail: reject })));
    assert.deepEqual(page, { kind: 'success', res: { errMsg: 'navigateTo:ok' } });
    mp.api.navigateTo({ url: 'plugin://map-plugin/index' });
    await until(() => mp.real('navigateTo').length === 2);
    assert.deepEqual(mp.real('navigateTo').map((c) => c.args.url), ['/pages/login/login?x=1', 'plugin://map-plugin/index']);
    assert.equal(mp.requests.length, 0, 'nothing reached the sandbox');
  });
});

test("requirePlugin('issuer-plugin') reads the latest session's results", async (t) => {
  const { mp, sb, shim } = await setup(t);
  const plugin = shim.requirePlugin('issuer-plugin');
  assert.equal(plugin, sb.requirePlugin('issuer-plugin'), 'the module export finds the installed stand-in');
  assert.deepEqual(getters(plugin), INITIAL, 'before any page: the plugin\'s initial values');

  await settle(mp.api.navigateTo({ url: LOGIN }));
  await s.advance('2s');
  await sb.idle();
  await until(() => mp.top().route === 'pages/login/login');
  const { orderNo, openId } = sb.lastSession.returned.query;

  // Each page goes back to the host, whose onShow reads the getters.
  const visit = async (url) => {
    mp.events.length = 0;
    const got = await settle(mp.api.navigateTo({ url }));
    assert.equal(got.kind, 'success', JSON.stringify(got.res));
    await s.advance('2s');
    await sb.idle();
    assert.equal(sb.lastSession.returned.openType, 'navigateBack');
    assert.deepEqual(mp.events, ['pages/login/login.onHide', 'pages/login/login.onShow']);
    return getters(plugin);
  };

  const signed = await visit(`plugin://issuer-plugin/signProtocol?orderNo=${orderNo}`);
  assert.deepEqual(signed.getSignProResult, { state: 0 });

  const auth = await visit(`plugin://issuer-plugin/signGetAuth?orderNo=${orderNo}&openId=${openId}`);
  assert.deepEqual(auth.getSignCarServiceResule, { state: 0 });

  const active = await visit(`plugin://issuer-plugin/activeDes?orderNo=${orderNo}`);
  assert.equal(active.getActiveResult.state, 0);
  assert.match(active.getActiveResult.obu, /^\d{16}$/);
  assert.match(active.getActiveResult.card, /^\d{20}$/);
  const session = sb.lastSession.id;
  assert.deepEqual(active.getActiveResult, (await s.json('GET', `/miniprogram/v1/sessions/${session}/plugin/getActiveResult`, undefined, 200)).body);

  // A getter returns a copy: the host cannot change what the next read sees.
  plugin.getActiveResult().state = 9;
  assert.equal(plugin.getActiveResult().state, 0);
});

test('requirePlugin of another plugin is the real one', async (t) => {
  const { sb } = await setup(t);
  globalThis.requirePlugin = (alias) => ({ real: alias });
  t.after(() => delete globalThis.requirePlugin);
  assert.deepEqual(sb.requirePlugin('map-plugin'), { real: 'map-plugin' });
});

test('a manual plugin page: the act page, then the redirect replaces it', async (t) => {
  const { mp, sb } = await setup(t);
  // mobile 13800000000 selects issuer.manual.
  const got = await settle(mp.api.navigateTo({ url: LOGIN.replace(MOBILE, '13800000000') }));
  assert.equal(got.kind, 'success');
  const session = sb.lastSession;
  assert.equal(session.mode, 'manual');
  await until(() => mp.top().route === 'pages/mpsandbox-act/index');
  assert.equal(mp.top().data.url, `${s.url}/act/${session.id}`);

  await s.resolve(session.id, 'success');
  await sb.idle();
  await until(() => mp.top().route === 'pages/login/login');
  assert.deepEqual(mp.stack.map((p) => p.route), ['pages/index/index', 'pages/login/login']);
  assert.equal(mp.real('redirectTo').length, 1);
  assert.match(mp.real('redirectTo')[0].args.url, /^\/pages\/login\/login\?openId=/);
});

test('a payment through the functional page', async (t) => {
  // What the host's functional-pages/request-payment.js does (the plugin guide
  // 支付接入): it hands back the five fields its backend signed.
  const host = (nonce, change) => {
    const seen = [];
    const before = (paymentArgs, cb) => {
      seen.push(paymentArgs);
      s.paymentArgs(nonce).then((args) => cb(null, Object.assign(args, change)), (e) => cb(e));
    };
    return { before, seen };
  };
  const nonce = (prefix) => prefix + crypto.randomBytes(6).toString('hex');

  for (const [form, call] of Object.entries(forms)) {
    await t.test(`ok, ${form} form`, async (t) => {
      const h = host(nonce('n'));
      const { sb } = await setup(t, { beforeRequestPayment: h.before });
      const got = await call((a) => sb.requestPluginPayment(a), { fee: 1, paymentArgs: { orderNo: 'ETC1' } });
      assert.deepEqual(got.res, { errMsg: 'requestPayment:ok' });
      assert.equal(got.kind, 'success');
      assert.deepEqual(h.seen, [{ orderNo: 'ETC1' }], 'beforeRequestPayment gets the plugin\'s paymentArgs');
      if (form === 'callback') {
        assert.deepEqual(got.completed, got.res);
      }
    });

    const fails = [
      { name: 'the user cancels', nonce: 'sandboxcancel', want: { errMsg: 'requestPayment:fail cancel' } },
      { name: 'the payment fails', nonce: 'sandboxfail', want: { errMsg: 'requestPayment:fail 余额不足' } },
    ];
    for (const f of fails) {
      await t.test(`${f.name}, ${form} form`, async (t) => {
        const { sb } = await setup(t, { beforeRequestPayment: host(nonce(f.nonce)).before });
        const got = await call((a) => sb.requestPluginPayment(a), { paymentArgs: {} });
        assert.deepEqual(got, Object.assign({ kind: 'fail', res: f.want }, form === 'callback' ? { completed: f.want, returned: undefined } : {}));
      });
    }

    await t.test(`a bad paySign, ${form} form`, async (t) => {
      const { sb } = await setup(t, { beforeRequestPayment: host(nonce('n'), { paySign: 'AAAA' }).before });
      const got = await call((a) => sb.requestPluginPayment(a), { paymentArgs: {} });
      assert.equal(got.kind, 'fail');
      assert.match(got.res.errMsg, /^requestPayment:fail \/args\/paySign /);
      assert.deepEqual(got.res.violations.map((v) => v.path), ['/args/paySign']);
    });
  }

  await t.test('without functionalPages in app.json', async (t) => {
    const { sb } = await setup(t, { beforeRequestPayment: host(nonce('n')).before, appJson: { plugins: PLUGINS } });
    const got = await settle(sb.requestPluginPayment({ paymentArgs: {} }));
    assert.equal(got.kind, 'fail');
    assert.match(got.res.errMsg, /^requestPayment:fail \/caller\/appJson\/functionalPages callMiniProgramFunction:fail File not found/);
  });

  await t.test('without the functional page', async (t) => {
    const { sb, mp } = await setup(t);
    const got = await settle(sb.requestPluginPayment({ paymentArgs: {} }));
    assert.equal(got.kind, 'fail');
    assert.match(got.res.errMsg, /^requestPayment:fail callMiniProgramFunction:fail File not found/);
    assert.equal(mp.requests.length, 0);
  });

  await t.test('beforeRequestPayment calls back an error', async (t) => {
    const { sb, mp } = await setup(t, { beforeRequestPayment: (args, cb) => cb(new Error('下单失败')) });
    const got = await settle(sb.requestPluginPayment({ paymentArgs: {} }));
    assert.deepEqual(got, { kind: 'fail', res: { errMsg: 'requestPayment:fail 下单失败' } });
    assert.equal(mp.requests.length, 0);
  });

  await t.test('a manual payment sheet waits for the person', async (t) => {
    const { sb, mp } = await setup(t, { beforeRequestPayment: host(nonce('n')).before, scenario: 'issuer.manual' });
    const result = settle(sb.requestPluginPayment({ paymentArgs: {} }));
    await until(() => mp.top().route === 'pages/mpsandbox-act/index');
    const session = sb.lastSession;
    assert.equal(session.mode, 'manual');
    assert.equal(mp.top().data.url, `${s.url}/act/${session.id}`);

    await s.resolve(session.id, 'success');
    assert.deepEqual(await result, { kind: 'success', res: { errMsg: 'requestPayment:ok' } });
    await until(() => mp.stack.length === 1);
    assert.equal(mp.real('navigateBack').length, 1);
  });
});
