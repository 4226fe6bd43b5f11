'use strict';
// The jumps to another mini-program — wx.navigateToMiniProgram (repayment),
// wx.openBusinessView (pay score), wx.openEmbeddedMiniProgram and Alipay's
// my.openEmbeddedMiniProgram (P云) — against a real mpsandbox: the caller
// facts they post, success/fail/complete and the Promise form with
// WeChat's errMsg, and the way back through App.onShow and wx.onAppShow.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startSandbox, fakeMiniProgram, quietLogger, settle, loadShim, forms, until, DEMO_MCHID } = require('./harness');

const REPAY_APPID = 'wx5e73c65404eee268';
const PAYSCORE_APPID = 'wxd8f3793ea3b935b8';
const PCLOUD_WX = 'wxa204074068ad40ef';
const PCLOUD_ALIPAY = '2021004130621008';
const CASHIER = '/external/payment/trade/create/index?pay_id=';

let s;
test.before(async () => {
  s = await startSandbox();
});
test.after(() => s.stop());

const uniq = () => crypto.randomBytes(6).toString('hex').toUpperCase();

/** setup installs the shim into a fresh fake mini-program of the demo merchant. */
async function setup(t, opts) {
  const o = opts || {};
  const creds = await s.credentials();
  const mp = fakeMiniProgram(Object.assign({ appId: creds.appid }, o.mp));
  const logger = quietLogger();
  const sb = loadShim().install(Object.assign(
    { baseURL: s.url, [o.mp && o.mp.alipay ? 'my' : 'wx']: mp.api, getApp: mp.getApp, getCurrentPages: mp.getCurrentPages, logger },
    o.install,
  ));
  t.after(() => sb.uninstall());
  // As app.js would: listeners registered once install has run.
  const shows = [];
  const hides = [];
  mp.api.onAppShow((opts) => shows.push(opts));
  mp.api.onAppHide(() => hides.push(true));
  return { mp, sb, logger, shows, hides, creds };
}

// Each jump API with arguments that the sandbox accepts and refuses, the
// refusal's path, and what App.onShow must receive once the user is back.
const jumps = [
  {
    api: 'navigateToMiniProgram',
    ok: async () => ({
      appId: REPAY_APPID, path: 'pages/invest_list/invest_list',
      extraData: { appid: REPAY_APPID, mchid: DEMO_MCHID, nonce_str: 'n' + uniq(), openid: await s.vehicleUser('NORMAL') },
    }),
    bad: async () => ({
      appId: REPAY_APPID, path: 'pages/invest_list/invest_list',
      extraData: { appid: REPAY_APPID, mchid: DEMO_MCHID, nonce_str: 'n' + uniq(), openid: 'oNotAVehicleUser' },
    }),
    badPath: '/args/extraData/openid',
    back: (ret) => assert.deepEqual(ret.referrerInfo, { appId: REPAY_APPID }),
  },
  {
    api: 'openBusinessView',
    ok: async () => ({ businessType: 'wxpayScoreUse', extraData: await s.payScoreOrder('SHIM' + uniq()) }),
    bad: async () => {
      const extraData = await s.payScoreOrder('SHIM' + uniq());
      extraData.sign = '00' + extraData.sign.slice(2);
      return { businessType: 'wxpayScoreUse', extraData };
    },
    badPath: '/args/extraData/sign',
    back: (ret) => {
      assert.equal(ret.referrerInfo.appId, PAYSCORE_APPID);
      assert.match(ret.referrerInfo.extraData.query_id, /.+/);
    },
  },
  {
    api: 'openEmbeddedMiniProgram',
    ok: async () => ({ appId: PCLOUD_WX, path: CASHIER + (await s.prepare('SHIM' + uniq(), '101')) }),
    bad: async () => ({ appId: PCLOUD_WX, path: CASHIER + '620000000000000000000000' }),
    badPath: '/args/path',
    back: (ret) => {
      assert.equal(ret.referrerInfo.appId, PCLOUD_WX);
      assert.equal(ret.referrerInfo.extraData.status, 1);
      assert.equal(ret.referrerInfo.extraData.channel, '200201');
    },
  },
];

for (const j of jumps) {
  test(`wx.${j.api}`, async (t) => {
    for (const [form, call] of Object.entries(forms)) {
      await t.test(`ok, ${form} form, and the way back through App.onShow`, async (t) => {
        const { mp, sb, shows, hides } = await setup(t);
        const got = await call(mp.api[j.api], await j.ok());

        assert.equal(got.kind, 'success');
        assert.deepEqual(got.res, { errMsg: `${j.api}:ok` });
        if (form === 'callback') {
          assert.deepEqual(got.completed, got.res, 'complete gets the same result');
          assert.equal(got.returned, undefined, 'the callback form returns nothing');
        }
        assert.equal(mp.real(j.api).length, 0, 'the call reached the real API');
        const session = sb.lastSession;
        assert.equal(session.api, j.api);
        assert.equal(session.mode, 'auto');

        // The simulated user takes two seconds on the sandbox clock.
        await s.advance('2s');
        await sb.idle();

        assert.equal(shows.length, 1, 'wx.onAppShow listener calls');
        assert.equal(mp.app.shows.length, 1, 'App.onShow calls');
        for (const ret of [shows[0], mp.app.shows[0]]) {
          assert.equal(ret.scene, 1038);
          j.back(ret);
          assert.equal(ret.path, 'pages/index/index');
        }
        assert.equal(hides.length, 1, 'wx.onAppHide listener calls');
        assert.deepEqual(mp.events, ['app.onHide', 'pages/index/index.onHide', 'app.onShow', 'pages/index/index.onShow']);
        assert.equal(session.state, 'returned');
        assert.deepEqual(session.returned, (await s.json('GET', `/miniprogram/v1/sessions/${session.id}/return`, undefined, 200)).body);
        assert.equal(mp.frameworkListeners.show.length, 1, 'the listener is registered with the framework too');
      });

      await t.test(`fail, ${form} form, with every problem and its path`, async (t) => {
        const { mp, sb, shows, logger } = await setup(t);
        const got = await call(mp.api[j.api], await j.bad());

        assert.equal(got.kind, 'fail');
        assert.ok(got.res.errMsg.startsWith(`${j.api}:fail ${j.badPath} `), got.res.errMsg);
        assert.ok(got.res.violations.some((v) => v.path === j.badPath), JSON.stringify(got.res.violations));
        if (form === 'callback') {
          assert.deepEqual(got.completed, got.res);
        }
        assert.equal(sb.sessions.length, 0);
        await sb.idle();
        assert.equal(shows.length, 0, 'no return after a failed jump');
        assert.deepEqual(mp.events, [], 'the app never left');
        assert.equal(logger.lines.warn.length, 1, 'the refusal is logged for the console');
      });
    }
  });
}

// An Alipay mini-program has its own 16-digit app id; it calls as the
// sandbox merchant's appid, given to install.
const alipay = async () => ({ mp: { alipay: true, appId: '2021000000000001' }, install: { appId: (await s.credentials()).appid } });

test('my.openEmbeddedMiniProgram (Alipay)', async (t) => {
  for (const [form, call] of Object.entries(forms)) {
    await t.test(`ok, ${form} form, back to App.onShow`, async (t) => {
      const { mp, sb, shows, creds } = await setup(t, await alipay());
      const payID = await s.prepare('SHIM' + uniq(), '101');
      const got = await call(mp.api.openEmbeddedMiniProgram, { appId: PCLOUD_ALIPAY, path: CASHIER + payID });

      assert.equal(got.kind, 'success');
      assert.equal(got.res.errMsg, 'openEmbeddedMiniProgram:ok');
      assert.equal(mp.real('openEmbeddedMiniProgram').length, 0);
      const posted = mp.requests[0];
      assert.equal(posted.url, `${s.url}/miniprogram/v1/openEmbeddedMiniProgram`);
      assert.equal(posted.headers['content-type'], 'application/json', 'my.request takes headers, not header');
      assert.deepEqual(posted.body.caller, { appId: creds.appid, platform: 'alipay', sdkVersion: '2.9.11', envVersion: 'develop' });

      await s.advance('2s');
      await sb.idle();
      assert.equal(shows.length, 1);
      assert.equal(shows[0].scene, 1038);
      assert.equal(shows[0].referrerInfo.appId, PCLOUD_ALIPAY);
      assert.equal(shows[0].referrerInfo.extraData.channel, '100102');
      assert.deepEqual(mp.app.shows, shows);
    });

    await t.test(`fail, ${form} form: the WeChat cashier from Alipay`, async (t) => {
      const { mp, shows, sb } = await setup(t, await alipay());
      const payID = await s.prepare('SHIM' + uniq(), '101');
      const got = await call(mp.api.openEmbeddedMiniProgram, { appId: PCLOUD_WX, path: CASHIER + payID });

      assert.equal(got.kind, 'fail');
      assert.match(got.res.errMsg, /^openEmbeddedMiniProgram:fail \/args\/appId .*opens 2021004130621008/);
      await sb.idle();
      assert.equal(shows.length, 0);
    });
  }
});

test('the caller facts', async (t) => {
  const appJson = { embeddedAppIdList: [PCLOUD_WX] };

  await t.test('from getAppBaseInfo, getDeviceInfo, getAccountInfoSync and install', async (t) => {
    const { mp, creds } = await setup(t, { install: { appJson, scenario: 'embedpay.paid' } });
    await settle(mp.api.openEmbeddedMiniProgram({ appId: PCLOUD_WX, path: CASHIER + (await s.prepare('SHIM' + uniq(), '101')) }));
    assert.deepEqual(mp.requests[0].body.caller, {
      appId: creds.appid, platform: 'android', wechatVersion: '8.0.50', sdkVersion: '3.4.0', envVersion: 'develop', appJson, scenario: 'embedpay.paid',
    });
  });

  await t.test('from getSystemInfoSync on an older base library', async (t) => {
    const { mp, creds } = await setup(t, { mp: { modern: false, platform: 'iOS', version: '7.0.20', SDKVersion: '2.22.0', envVersion: 'trial' } });
    await settle(mp.api.openEmbeddedMiniProgram({ appId: PCLOUD_WX, path: CASHIER + '620000000000000000000000' }));
    assert.deepEqual(mp.requests[0].body.caller, { appId: creds.appid, platform: 'ios', wechatVersion: '7.0.20', sdkVersion: '2.22.0', envVersion: 'trial' });
  });

  // The sandbox judges the call by them: below base library 2.23.1 a
  // half-screen target must be listed in app.json (SOURCES.md §4).
  await t.test('reach the sandbox, which judges the call by them', async (t) => {
    const old = { mp: { SDKVersion: '2.22.0' } };
    const without = await setup(t, old);
    const refused = await settle(without.mp.api.openEmbeddedMiniProgram({ appId: PCLOUD_WX, path: CASHIER + (await s.prepare('SHIM' + uniq(), '101')) }));
    assert.equal(refused.kind, 'fail');
    assert.ok(refused.res.violations.some((v) => v.path === '/caller/appJson/embeddedAppIdList'), JSON.stringify(refused.res));

    const withList = await setup(t, Object.assign({ install: { appJson } }, old));
    const accepted = await settle(withList.mp.api.openEmbeddedMiniProgram({ appId: PCLOUD_WX, path: CASHIER + (await s.prepare('SHIM' + uniq(), '101')) }));
    assert.equal(accepted.kind, 'success', JSON.stringify(accepted.res));
  });

  await t.test('the scenario of install, then of setScenario', async (t) => {
    const { mp, sb, shows } = await setup(t, { install: { scenario: 'embedpay.failed' } });
    await settle(mp.api.openEmbeddedMiniProgram({ appId: PCLOUD_WX, path: CASHIER + (await s.prepare('SHIM' + uniq(), '101')) }));
    assert.equal(sb.lastSession.scenario, 'embedpay.failed');
    sb.setScenario('embedpay.closed');
    await settle(mp.api.openEmbeddedMiniProgram({ appId: PCLOUD_WX, path: CASHIER + (await s.prepare('SHIM' + uniq(), '101')) }));
    assert.equal(sb.lastSession.scenario, 'embedpay.closed');
    await s.advance('2s');
    await sb.idle();
    assert.equal(shows.length, 2);
    const failed = shows.find((o) => o.referrerInfo.extraData);
    assert.equal(failed.referrerInfo.extraData.status, -1, 'embedpay.failed: status -1');
    assert.ok(shows.some((o) => o.referrerInfo.extraData === undefined), 'embedpay.closed: no extraData');
  });
});

test('a manual session opens the act page and returns when a person chose', async (t) => {
  const { mp, sb, shows } = await setup(t);
  const payID = await s.prepare('SHIM' + uniq(), '199'); // 199: embedpay.manual
  const got = await settle(mp.api.openEmbeddedMiniProgram({ appId: PCLOUD_WX, path: CASHIER + payID }));
  assert.equal(got.kind, 'success');
  const session = sb.lastSession;
  assert.equal(session.mode, 'manual');

  // The act page is on top, showing the sandbox's page for this session.
  await until(() => mp.top().route === 'pages/mpsandbox-act/index');
  assert.equal(mp.top().data.url, `${s.url}/act/${session.id}`);
  assert.deepEqual((await s.session(session.id)).actions.sort(), ['close', 'fail', 'pay', 'paying']);

  await s.resolve(session.id, 'pay');
  await sb.idle();
  await until(() => mp.stack.length === 1);

  assert.equal(shows.length, 1);
  assert.equal(shows[0].referrerInfo.extraData.status, 1);
  assert.equal(shows[0].path, 'pages/index/index', 'the page the user comes back to, not the act page');
  assert.equal(mp.real('navigateBack').length, 1);
  assert.deepEqual(mp.events, [
    'app.onHide', 'pages/index/index.onHide', 'pages/mpsandbox-act/index.onLoad', 'pages/mpsandbox-act/index.onShow',
    'app.onShow', 'pages/mpsandbox-act/index.onUnload', 'pages/index/index.onShow',
  ]);
});

test('a manual session without the act page is still followed', async (t) => {
  const { mp, sb, shows, logger } = await setup(t, { install: { actPage: '/pages/missing/index' } });
  const payID = await s.prepare('SHIM' + uniq(), '199');
  await settle(mp.api.openEmbeddedMiniProgram({ appId: PCLOUD_WX, path: CASHIER + payID }));
  await until(() => logger.lines.warn.length === 1);
  assert.match(logger.lines.warn[0], /cannot open \/pages\/missing\/index .*decide session ses_\w+ on the QA page/);
  await s.resolve(sb.lastSession.id, 'close');
  await sb.idle();
  assert.equal(shows.length, 1);
  assert.equal(shows[0].referrerInfo.extraData, undefined, 'a closed half screen carries no extraData');
  assert.deepEqual(mp.events, ['app.onHide', 'pages/index/index.onHide', 'app.onShow', 'pages/index/index.onShow']);
});

test('a second jump while one is under way fails as WeChat does', async (t) => {
  const { mp, sb } = await setup(t);
  const path = CASHIER + (await s.prepare('SHIM' + uniq(), '101'));
  const [first, second] = await Promise.all([
    settle(mp.api.openEmbeddedMiniProgram({ appId: PCLOUD_WX, path })),
    settle(mp.api.openBusinessView({ businessType: 'wxpayScoreUse', extraData: {} })),
  ]);
  assert.equal(first.kind, 'success');
  assert.deepEqual(second, { kind: 'fail', res: { errMsg: 'openBusinessView:fail another navigation is in progress' } });
  assert.equal(sb.sessions.length, 1);
});

test('offAppShow stops the deliveries to a listener', async (t) => {
  const { mp, sb } = await setup(t);
  const got = [];
  const listener = (o) => got.push(o);
  mp.api.onAppShow(listener);
  mp.api.offAppShow(listener);
  await settle(mp.api.openEmbeddedMiniProgram({ appId: PCLOUD_WX, path: CASHIER + (await s.prepare('SHIM' + uniq(), '101')) }));
  await s.advance('2s');
  await sb.idle();
  assert.equal(got.length, 0);
  assert.equal(mp.app.shows.length, 1, 'App.onShow still sees it');
});

test('a callback that throws does not stop the return', async (t) => {
  const { mp, sb, shows, logger } = await setup(t);
  mp.api.openEmbeddedMiniProgram({
    appId: PCLOUD_WX, path: CASHIER + (await s.prepare('SHIM' + uniq(), '101')),
    success() {
      throw new Error('merchant bug');
    },
  });
  await until(() => sb.sessions.length === 1);
  await s.advance('2s');
  await sb.idle();
  assert.equal(shows.length, 1);
  assert.match(logger.lines.error[0], /a callback threw: merchant bug/);
});

test('actURL names the page the web-view shows', async (t) => {
  const { mp, sb } = await setup(t, { install: { actURL: (id) => `https://qa.example.com/act/${id}?token=t` } });
  await settle(mp.api.openEmbeddedMiniProgram({ appId: PCLOUD_WX, path: CASHIER + (await s.prepare('SHIM' + uniq(), '199')) }));
  await until(() => mp.top().route === 'pages/mpsandbox-act/index');
  assert.equal(mp.top().data.url, `https://qa.example.com/act/${sb.lastSession.id}?token=t`);
  await s.resolve(sb.lastSession.id, 'close');
  await sb.idle();
});

test('passThrough lets a jump reach the real API', async (t) => {
  const { mp, sb } = await setup(t, { install: { passThrough: (api, args) => api === 'navigateToMiniProgram' && args.appId === 'wx1111111111111111' } });
  mp.api.navigateToMiniProgram({ appId: 'wx1111111111111111', path: 'pages/index/index' });
  assert.equal(mp.real('navigateToMiniProgram').length, 1);
  assert.equal(mp.requests.length, 0);
  const other = await settle(mp.api.navigateToMiniProgram({ appId: 'wx2222222222222222' }));
  assert.match(other.res.errMsg, /^navigateToMiniProgram:fail \/args\/appId "wx2222222222222222" is not a target this sandbox simulates/);
  assert.equal(sb.sessions.length, 0);
});
