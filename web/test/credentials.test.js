import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authChallenge, encodeCredentials } from '../session/credentials.js';

test('the first Basic or Digest challenge is found', () => {
  assert.deepEqual(authChallenge({ 'Www-Authenticate': ['Basic realm="Porthole Service Menu", charset="UTF-8"'] }),
    { scheme: 'basic', realm: 'Porthole Service Menu' });
  assert.deepEqual(authChallenge({ 'WWW-Authenticate': ['Bearer x', 'Digest realm="a \\"b\\"", nonce="n", qop="auth"'] }),
    { scheme: 'digest', realm: 'a "b"' });
  assert.equal(authChallenge({ 'Www-Authenticate': ['Negotiate abc=='] }), null);
  assert.equal(authChallenge({ 'Content-Type': ['text/html'] }), null);
  assert.equal(authChallenge(undefined), null);
});

test('credentials are base64 of UTF-8 user:password', () => {
  assert.equal(encodeCredentials('service', 'service'), 'c2VydmljZTpzZXJ2aWNl');
  assert.equal(encodeCredentials('jörg', 'pä:ss'), Buffer.from('jörg:pä:ss').toString('base64'));
  assert.equal(encodeCredentials('a:b', 'x'), null);
});
