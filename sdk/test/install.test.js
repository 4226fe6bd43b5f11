'use strict';
// Delivery of the module by the binary, its lack of dependencies, and what
// install does before any call: the release guard, the caller facts, the
// wrapping and its undoing.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { startSandbox, fakeMiniProgram, quietLogger, loadShim, SHIM, settle } = require('./harness');

test('the binary serves the module', async (t) => {
  const s = await startSandbox(t);
  const res = await fetch(s.url + '/sdk/mpsandbox-wx.js');
  const got = await res.text();

  await t.test('as the source file, byte for byte', () => {
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/javascript; charset=utf-8');
    assert.equal(got, fs.readFileSync(SHIM, 'utf8'));
  });

  await t.test('as a CommonJS module that requires nothing', () => {
    const module = { exports: {} };
    const required = [];
    // eslint-disable-next-line no-new-func
    new Function('module', 'exports', 'require', got)(module, module.exports, (name) => {
      required.push(name);
      throw new Error(`the shim required ${name}`);
    });
    assert.deepEqual(required, []);
    assert.equal(typeof module.exports.install, 'function');
    assert.equal(typeof module.exports.requirePlugin, 'function');
    assert.match(module.exports.VERSION, /^\d+\.\d+\.\d+$/);
  });
});

test('the release guard', async (t) => {
  const cases = [
    { name: 'release', envVersion: 'release', want: /release build/ },
    { name: "Alipay's grey release", envVersion: 'gray', alipay: true, want: /gray build/ },
    { name: 'no envVersion to read', noAccountInfo: true, want: /envVersion cannot be read/ },
  ];
  for (const tc of cases) {
    await t.test(tc.name, () => {
      const mp = fakeMiniProgram({ envVersion: tc.envVersion, alipay: tc.alipay, noAccountInfo: tc.noAccountInfo, appId: 'wx0000000000000001' });
      const before = Object.assign({}, mp.api);
      const logger = quietLogger();
      const shim = loadShim();
      const sb = shim.install({ baseURL: 'http://127.0.0.1:9', [tc.alipay ? 'my' : 'wx']: mp.api, logger });

      assert.equal(sb.installed, false);
      assert.match(sb.reason, tc.want);
      assert.equal(logger.lines.error.length, 1, 'one clear message');
      assert.match(logger.lines.error[0], /only runs in develop and trial builds/);
      for (const name of Object.keys(before)) {
        assert.equal(mp.api[name], before[name], `${name} was replaced`);
      }
      assert.deepEqual(Object.keys(mp.api).sort(), Object.keys(before).sort());
    });
  }

  for (const envVersion of ['develop', 'trial']) {
    await t.test(`${envVersion} installs`, () => {
      const mp = fakeMiniProgram({ envVersion, appId: 'wx0000000000000001' });
      const original = mp.api.navigateTo;
      const sb = loadShim().install({ baseURL: 'http://127.0.0.1:9', wx: mp.api, logger: quietLogger() });
      t.after(() => sb.uninstall());
      assert.equal(sb.installed, true);
      assert.notEqual(mp.api.navigateTo, original);
      assert.equal(typeof mp.api.openBusinessView, 'function');
    });
  }
});

test('install without what it needs throws', async (t) => {
  await t.test('no baseURL', () => {
    const mp = fakeMiniProgram({ appId: 'wx0000000000000001' });
    assert.throws(() => loadShim().install({ wx: mp.api }), /needs baseURL/);
  });
  await t.test('no appId', () => {
    const mp = fakeMiniProgram({});
    assert.throws(() => loadShim().install({ baseURL: 'http://127.0.0.1:9', wx: mp.api }), /pass install\(\{appId\}\)/);
  });
});

test('uninstall restores the framework', async () => {
  const mp = fakeMiniProgram({ appId: 'wx0000000000000001' });
  const before = Object.assign({}, mp.api);
  const shim = loadShim();
  const sb = shim.install({ baseURL: 'http://127.0.0.1:9', wx: mp.api, logger: quietLogger() });
  assert.notEqual(mp.api.navigateToMiniProgram, before.navigateToMiniProgram);
  sb.uninstall();
  assert.deepEqual(Object.keys(mp.api).sort(), Object.keys(before).sort());
  for (const name of Object.keys(before)) {
    assert.equal(mp.api[name], before[name], `${name} is not the original again`);
  }
});

test('an unreachable sandbox fails the call with the reason', async (t) => {
  // A port nothing listens on: the answer must be a fail, never a hang.
  const mp = fakeMiniProgram({ appId: 'wx0000000000000001' });
  const logger = quietLogger();
  const sb = loadShim().install({ baseURL: 'http://127.0.0.1:9', wx: mp.api, logger });
  t.after(() => sb.uninstall());
  const got = await settle(mp.api.openBusinessView({ businessType: 'wxpayScoreUse', extraData: {} }));
  assert.equal(got.kind, 'fail');
  assert.match(got.res.errMsg, /^openBusinessView:fail mpsandbox at http:\/\/127\.0\.0\.1:9 is unreachable: request:fail /);
  assert.equal(logger.lines.warn.length, 1);
});
