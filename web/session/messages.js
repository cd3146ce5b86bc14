// Origin: SHELL and DEVICE origins (pure, nothing secret: the device's page
// can read it, as it can read the pages built from it).
//
// The session window's message catalog: every text the session window, its
// toolbar, the bar of popped-out tabs, the VNC viewer, the credentials
// dialog, the worker's notice pages and the device origin's end pages show,
// keyed, in one place, so a translation is one more object of the same
// keys. The shape is the app's (web/app/messages.js): {name} placeholders,
// key.one / key.other chosen by the locale's plural rules for a count.
//
// The HTML files of session/ hold no text of their own: Go renders them
// from this same object (web/messages.go reads the block below), so each
// line of it is one 'key': 'text', (single quotes, \' the only escape) or
// a // comment. web/test/messages.test.js holds it to that.

import { catalogOf, format } from './catalog.js';

export const en = {
  'brand': 'Porthole',
  'title.session': 'Porthole session',
  'title.device': '{device} — Porthole',
  'title.deviceSite': '{device} · {site} — Porthole',
  'title.relay': 'Porthole relay',
  'device.fallback': 'Device',

  // the session window's status line and end panel
  'status.loading': 'Loading…',
  'status.connecting': 'Connecting…',
  'status.signingIn': 'Signing in…',
  'ended.title': 'Session ended',
  'ended.inUse': 'Session open elsewhere',
  'ended.notJoined': 'Could not join the session',
  'ended.noSession': 'No session',
  'ended.noSessionText': 'This page needs a session. Open the device from Porthole to start one.',
  'ended.openAgain': 'Open the device again from Porthole.',
  'ended.again': 'Open a new session on this device',
  'ended.againOn': 'Open a new session on {device}',
  'ended.details': 'Details',
  'ended.code': 'Code: ',
  'ended.over': 'The session is over.',
  'end.client': 'You ended the session.',
  'end.agent': 'The agent ended the session.',
  'end.expired': 'The session reached its time limit.',
  'end.agent_lost': 'The agent lost its connection to Porthole.',
  'end.client_lost': 'This window lost its connection to Porthole.',
  'end.admin': 'An administrator ended the session.',
  'end.error': 'The session ended because of an error.',
  'join.unavailable': 'This session is not available; open the device again from Porthole.',
  'join.stateMismatch': 'The sign-in answer does not belong to this window. Open the device again from Porthole.',
  'join.tokenFailed': 'token request failed (HTTP {status})',
  'join.bindFailed': 'the session could not be joined (HTTP {status})',
  'join.signalingClosed': 'The signaling connection closed ({code}). The link may have expired; open the device again from Porthole.',
  'fail.connection': 'The connection to the agent failed.',
  'fail.noPath': 'No network path to the agent could be established.',
  'fail.worker': 'The service worker did not start in time; reload the window.',

  // the toolbar
  'toolbar.device': 'Device',
  'toolbar.deviceID': 'Device {id}',
  'toolbar.site': 'Customer site',
  'toolbar.timer': 'Time left in this session',
  'toolbar.path': 'Network path to the agent',
  'toolbar.reason': 'Why the session is relayed',
  'toolbar.where': 'Page in the device',
  'toolbar.popout': 'Open in its own tab',
  'toolbar.popoutShort': 'Own tab',
  'toolbar.popoutTitle': 'Show the device page as a tab of its own, for pages that refuse to be shown in a frame; the session stays in this window',
  'toolbar.end': 'End session',
  'toolbar.ends5': 'The session ends in 5 minutes.',
  'toolbar.ends1': 'The session ends in 1 minute.',
  'toolbar.closed': 'closed',
  'path.connecting': 'connecting…',
  'path.relayed': 'relayed',
  'path.direct': 'direct',
  'path.rtt': '{kind} · {ms} ms',
  'path.title': 'Network path: {local} → {remote}',
  'path.candidates': ' (candidates here: {here}; at the site: {site})',
  'path.viaProxy': '{relay} via the site\'s HTTP proxy',

  // why a session is relayed (pathreason.js)
  'reason.policy': 'relay forced by policy: direct connections are turned off',
  'reason.udpBlockedBoth': 'UDP blocked on both networks',
  'reason.udpBlockedSite': 'UDP blocked at the site',
  'reason.udpBlockedHere': 'UDP blocked on your network',
  'reason.symmetricBoth': 'symmetric NAT on both sides',
  'reason.symmetricSite': 'symmetric NAT at the site',
  'reason.symmetricHere': 'symmetric NAT on your network',
  'reason.strictNATs': 'the NATs on both sides refuse direct connections',
  'reason.noDirect': 'no direct path worked',
  'reason.proxyOnly': 'site allows only an HTTP proxy',
  'reason.tlsOnly': 'site lets only TLS out (UDP and plain TCP blocked)',
  'reason.both': '{first}; {second}',
  'reason.symmetricSiteOnly': '{reason}; your NAT accepts only hosts it contacted',
  'reason.symmetricHereOnly': '{reason}; the site\'s NAT accepts only hosts it contacted',
  'reason.strictDetail': '{reason} (symmetric NAT on both sides, or strict firewalls)',

  // notices in the toolbar
  'notice.framebust': 'This page only works in its own tab.',
  'notice.websocket': 'This page opened a WebSocket before the session\'s service worker controlled it (a hard reload?); reload the page normally for its live updates.',
  'notice.signalingRestarting': 'Signaling node restarting — reconnecting… (the page keeps working)',
  'notice.signalingReconnecting': 'Signaling connection interrupted — reconnecting… (the page keeps working)',
  'notice.signalingLost': 'Signaling connection lost; the page still works while the connection to the agent holds.',
  'notice.poppedOut': 'The page is open in its own tab; this window keeps the session. Closing it ends the session.',
  'notice.legacyTLS': 'This device only speaks {version}.',
  'notice.tooLarge': 'What this page sent was larger than {mib} MiB, too large to keep for a second try after the login: send it again.',
  'notice.error': '{detail} ({code})',
  'notice.errorFallback': 'Error',
  'hidden.text': 'It hides itself when it is shown inside another page. In a tab of its own it works, and stays in this session: this window keeps the connection, the time and End session.',
  'frame.title': 'Device page',
  'view.vnc': 'VNC :{port}',
  'view.vncViewOnly': 'VNC :{port} (view only)',

  // reconnecting (recovery.js)
  'recovery.reconnecting': 'Connection to the agent interrupted; reconnecting…',
  'recovery.attempt': 'Connection to the agent interrupted; reconnecting… (attempt {attempt})',
  'recovery.restored.one': 'Connection to the agent restored after {seconds} s ({count} ICE restart).',
  'recovery.restored.other': 'Connection to the agent restored after {seconds} s ({count} ICE restarts).',
  'recovery.giveUp.one': 'The connection to the agent broke and {count} ICE restart in {seconds} s did not restore it.',
  'recovery.giveUp.other': 'The connection to the agent broke and {count} ICE restarts in {seconds} s did not restore it.',

  // moving to another relay (relayswitch.js)
  'relay.lost': 'Relay lost ({lost}); reconnecting through relay {relay}…',
  'relay.lostAttempt': 'Relay lost ({lost}); reconnecting through relay {relay}… (attempt {attempt})',
  'relay.lostNoNew': 'Relay lost ({lost}); reconnecting… (attempt {attempt})',

  // the device's sign-in dialog (credentials.js)
  'credentials.heading': 'The device asks you to sign in',
  'credentials.text': '{device} wants a user name and password. Porthole passes them to the device for this session only.',
  'credentials.textRealm': '{device} wants a user name and password for “{realm}”. Porthole passes them to the device for this session only.',
  'credentials.device': 'The device',
  'credentials.refused': 'The device did not accept these credentials.',
  'credentials.username': 'User name',
  'credentials.password': 'Password',
  'credentials.cancel': 'Cancel',
  'credentials.submit': 'Sign in',
  'credentials.colon': 'A user name cannot contain a colon.',

  // the SSH terminal (terminal.js)
  'terminal.user': 'User',
  'terminal.password': 'Password',
  'terminal.key': 'or private key (PEM)',
  'terminal.connect': 'Connect',
  'terminal.connecting': 'Connecting to port {port} as {user}…',
  'terminal.pinned': 'SSH host key pinned at first use: {key}',
  'terminal.ended': '[the session on the device ended]',
  'terminal.location': 'SSH :{port}',
  // the VNC viewer (screen.js)
  'screen.viewOnly': 'View only',
  'screen.scale': 'Scale to window',
  'screen.clipboard': 'Clipboard',
  'screen.send': 'Send clipboard',
  'screen.password': 'VNC password of the device',
  'screen.connect': 'Connect',
  'screen.refused': 'The device refused the VNC password.',
  'screen.refusedWhy': 'The device refused the VNC password: {reason}.',
  'screen.closed': 'The connection to the device’s screen closed.',

  // the bar of a popped-out tab (bar.html, bar.js)
  'bar.connecting': 'Connecting to the session window…',
  'bar.lost': 'The session window is closed',
  'bar.ended': 'Session ended',
  'bar.confirm': 'Click again to end',

  // the relay frame (relay.js)
  'relay.page': 'This page is part of a Porthole session window.',
  'relay.noWorkers': 'This browser has no service workers; Porthole needs them to show the device.',
  'relay.workerFailed': 'The service worker could not start: {error}',

  // the worker's notice pages (pages.js, sw.js)
  'page.ended.text': 'This remote session is over; the device can no longer be reached from this page. Start a new session from Porthole to continue.',
  'page.error.title': 'The device could not be reached',
  'page.error.text': 'The request could not be carried to the device.',
  'page.offsite.title': 'Redirect outside the device',
  'page.offsite.text': 'The device redirected to {url}, which is not part of this session. Porthole does not follow it.',
  'page.offsiteLink.title': 'Link outside the device',
  'page.offsiteLink.text': 'This link leads to {url}, which is not part of this session. Porthole does not open it here and the agent never fetches it; open it in a browser of your own if you need it.',
  'page.offsiteLink.anotherSite': 'another site',
  'page.windowClosed': 'The Porthole session window is closed. Reopen the session to reach the device.',
  'page.windowClosedSending': 'The Porthole session window closed while this was being sent. Send it again.',
  'page.deviceStatus': 'The device answered with status {status}.',
  'page.noAnswer': 'No answer from the session window.',

  // the device origin's end page (ended.html) and detached page (detached.html)
  'endPage.title': 'Session ended — Porthole',
  'endPage.text': 'This remote session is over; nothing of the device is kept in this browser.',
  'endPage.startNew': 'Start a new session from Porthole to continue.',
  'detached.heading': 'This page belongs to a Porthole session window',
  'detached.before': 'This address shows a device\'s page only inside the Porthole session window that opened it. Open the device from Porthole',
  'detached.after': ', or go back to its session window and reload it.',
};

// The machinery is the app's too (catalog.js).
export { format };
export const { useCatalog, has, t } = catalogOf(en);
