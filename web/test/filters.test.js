import { test } from 'node:test';
import assert from 'node:assert/strict';
import { active, deviceType, filterSites, types } from '../app/filters.js';

const sites = [
  { id: 'plant', name: 'Plant 7', devices: [
    { id: 'lp-20', name: 'Line printer', type: 'printer', model: 'HP LaserJet M507', serial: 'CNB1', online: true, enabled: true },
    { id: 'hmi', name: 'HMI', services: [{ kind: 'vnc', port: 5900 }], online: false, enabled: true },
  ] },
  { id: 'hq', name: 'Head office', devices: [{ id: 'router', httpPort: 80, online: true, enabled: false }] },
];
const ids = (out) => out.flatMap((s) => s.devices.map((d) => d.id));

test('filters by search, site, type and state', () => {
  const cases = [
    [{}, ['lp-20', 'hmi', 'router']],
    [{ q: 'laserjet' }, ['lp-20']],
    [{ q: 'cnb1' }, ['lp-20']],
    [{ q: 'head office' }, ['router']],
    [{ site: 'plant' }, ['lp-20', 'hmi']],
    [{ type: 'vnc' }, ['hmi']],
    [{ type: 'web' }, ['router']],
    [{ state: 'offline' }, ['hmi']],
    [{ state: 'online' }, ['lp-20', 'router']],
    [{ state: 'disabled' }, ['router']],
    [{ state: 'enabled', site: 'hq' }, []],
    [{ q: '  ' }, ['lp-20', 'hmi', 'router']],
  ];
  for (const [f, want] of cases) assert.deepEqual(ids(filterSites(sites, f)), want, JSON.stringify(f));
});

test('a site without matches is dropped only while a filter is set', () => {
  assert.equal(filterSites([{ id: 'empty', devices: [] }], {}).length, 1);
  assert.equal(filterSites(sites, { q: 'laserjet' }).length, 1);
  assert.ok(!active({ q: ' ' }) && active({ state: 'online' }));
});

test('types come from discovery, else from the services', () => {
  assert.deepEqual(types(sites), ['printer', 'vnc', 'web']);
  assert.equal(deviceType({ services: [{ kind: 'ssh', port: 22 }] }), 'ssh');
  assert.equal(deviceType({}), 'other');
});
