// The message catalog: every text the app shows, keyed, in one place, so
// a translation is one more object of the same keys. Texts take {name}
// placeholders; counts choose between key.one and key.other with the
// locale's plural rules. index.html holds no text of its own: its
// elements name keys (data-msg, data-msg-attr) and applyMessages fills
// them in.
//
// Errors from the API are shown by their stable code (proto/errors.go),
// never as the server's own text: errorText(action, err) says what failed
// (action.KEY) and why, in words (err.ACTION.CODE, else err.CODE). The
// server's message only goes to the console, for whoever debugs.

export const en = {
  'app.name': 'Porthole',
  'app.tagline': 'Remote access to the devices at your customers’ sites',
  'title.signin': 'Sign in',
  'title.devices': 'Devices',
  'title.jobs': 'Jobs',
  'title.account': 'Account',
  'title.admin': 'Administration',

  'nav.label': 'Main',
  'nav.devices': 'Devices',
  'nav.jobs': 'Jobs',
  'nav.account': 'Account',
  'nav.admin': 'Admin',
  'nav.signout': 'Sign out',
  'nav.signedInAs': 'Signed in as {name}',
  'nav.skip': 'Skip to the content',

  // sign in
  'signin.heading': 'Sign in',
  'signin.intro': 'Use the account your administrator gave you.',
  'signin.username': 'User name',
  'signin.password': 'Password',
  'signin.submit': 'Sign in',
  'signin.mfaIntro': 'Enter the 6-digit code from your authenticator app.',
  'signin.code': 'Code',
  'signin.recoveryCode': 'Recovery code',
  'signin.useRecovery': 'Use a recovery code instead',
  'signin.verify': 'Verify',
  'signin.continue': 'Sign in to continue to the device.',
  'signin.ended': 'Your login has ended. Sign in again.',
  'signin.signedOut': 'You are signed out.',

  // devices
  'devices.heading': 'Devices',
  'devices.sameTab': 'Open in this tab',
  'devices.empty.title': 'No devices yet',
  'devices.empty.body': 'Devices appear here when an agent at one of your sites connects. An administrator installs agents under Admin → Agents; ask yours for access to a site if you expected devices here.',
  'devices.site.empty': 'No devices in this site yet. They appear when its agent connects.',
  'devices.site.unassigned': 'Unassigned agents',
  'devices.site.roles': 'Your roles: {roles}',
  'devices.site.admin': 'You administer this site.',
  'devices.count.one': '{count} device',
  'devices.count.other': '{count} devices',
  'devices.col.device': 'Device',
  'devices.col.status': 'Status',
  'devices.col.access': 'Remote access',
  'devices.id': 'ID {id}',
  'devices.open': 'Open',
  'devices.openLabel': 'Open {name}',
  'devices.access.toggle': 'Remote access enabled',
  'devices.access.on': 'Remote access on',
  'devices.access.off': 'Remote access off',
  'devices.access.enabled': 'Remote access enabled for {name}.',
  'devices.access.disabled': 'Remote access disabled for {name}.',
  'devices.why.offline': 'Its agent is not connected.',
  'devices.why.disabled': 'Remote access is off; a configurer of the site can turn it on.',
  'devices.why.role': 'You may not open devices of this site.',
  'devices.why.noWeb': 'No web page: reach it from a terminal with porthole ssh or porthole forward.',
  'devices.services': 'Services',
  'service.label': '{kind} :{port}{name}',
  'service.web': 'Web',
  'service.ssh': 'SSH',
  'service.vnc': 'VNC',
  'service.tcp': 'TCP',
  'devices.opened': 'Session for {name} opened in a new tab.',
  'devices.openLink': 'Open the session',
  'devices.loadFailed': 'Could not load the devices.',

  // health and status in words
  'health.reachable': 'Reachable',
  'health.reachableLegacyTLS': 'Reachable, only with {version} (old, weak encryption)',
  'health.unconfirmed': 'Not confirmed — it answered none of the agent\'s probes',
  'health.unreachable': 'Unreachable',
  'health.unreachablePort': 'Unreachable — no answer on port {port}',
  'health.wrongDevice': 'Wrong device — it answers, but fails the identity check',
  'health.unchecked': 'Not checked yet',
  'health.offline': 'Offline — its agent is not connected',
  'health.details': 'Details',
  'health.checked': 'Checked {time}',
  'health.neverChecked': 'The agent has not reported a check of this device.',
  'health.problem': 'What the agent found: {problem}',
  'health.signaling': 'Its agent reaches signaling {route}',

  // jobs
  'jobs.heading': 'Jobs',
  'jobs.intro': 'Every session is a job: who opened which device, when, for how long, and every request it made.',
  'jobs.filter.legend': 'Filter',
  'jobs.filter.user': 'User',
  'jobs.filter.device': 'Device',
  'jobs.filter.site': 'Site',
  'jobs.filter.from': 'From',
  'jobs.filter.to': 'To',
  'jobs.filter.min': 'Minimum duration',
  'jobs.filter.minHint': 'for example 5m',
  'jobs.filter.path': 'Path',
  'jobs.filter.reason': 'How it ended',
  'jobs.filter.any': 'Any',
  'jobs.filter.submit': 'Filter',
  'jobs.filter.reset': 'Clear',
  'jobs.col.job': 'Job',
  'jobs.col.user': 'User',
  'jobs.col.device': 'Device',
  'jobs.col.site': 'Site',
  'jobs.col.start': 'Start',
  'jobs.col.end': 'End',
  'jobs.col.duration': 'Duration',
  'jobs.col.path': 'Path',
  'jobs.col.requests': 'Requests',
  'jobs.col.bytes': 'Bytes',
  'jobs.col.reason': 'How it ended',
  'jobs.empty.title': 'No jobs yet',
  'jobs.empty.body': 'A job is recorded each time someone opens a device. Open one under Devices, or clear the filter.',
  'jobs.live': 'Live',
  'jobs.type.webpage': 'Open Device Webpage',
  'jobs.type.port': 'Open Device Port',
  'jobs.path.direct': 'Direct',
  'jobs.path.relay': 'Relayed',
  'jobs.reason.client': 'Ended by the technician',
  'jobs.reason.expired': 'Time limit reached',
  'jobs.reason.agent': 'Ended by the agent',
  'jobs.reason.agent_lost': 'Agent connection lost',
  'jobs.reason.client_lost': 'Browser connection lost',
  'jobs.reason.admin': 'Terminated by an administrator',
  'jobs.reason.device_verification_failed': 'Device identity check failed',
  'jobs.reason.error': 'Failed to start',
  'jobs.state.requested': 'Requested',
  'jobs.state.verifying': 'Checking the device',
  'jobs.state.ready': 'Ready',
  'jobs.state.connected': 'Connected',
  'jobs.state.ended': 'Ended',
  'jobs.detail.title': '{type}: {device}',
  'jobs.detail.by': 'Opened by {user}',
  'jobs.detail.started': 'Started {time}',
  'jobs.detail.stillLive': 'Still live',
  'jobs.detail.ended': 'Ended {time}: {reason}',
  'jobs.detail.endedBy': 'Ended {time}: {reason} ({name})',
  'jobs.detail.entries.one': '{count} log entry, {bytes}',
  'jobs.detail.entries.other': '{count} log entries, {bytes}',
  'jobs.detail.states': 'Timeline',
  'jobs.detail.exportJSON': 'Export JSON',
  'jobs.detail.exportHAR': 'Export HAR',
  'jobs.detail.verify': 'Verify log',
  'jobs.detail.terminate': 'Terminate session',
  'jobs.detail.terminateConfirm': 'End this live session now? The technician is disconnected.',
  'jobs.detail.terminated': 'Session terminated.',
  'jobs.detail.close': 'Back to all jobs',
  'jobs.detail.more': 'The log is longer than one page; export it to see every entry.',
  'jobs.detail.log': 'Access log',
  'jobs.detail.logEmpty': 'No requests in this job’s log.',
  'jobs.verify.ok': 'Untouched: {entries} entries, {attested} attested by the signed checkpoint.',
  'jobs.verify.bad': 'Tampered: entry {broken} is the first that does not match the chain.',
  'jobs.log.seq': '#',
  'jobs.log.time': 'Time',
  'jobs.log.kind': 'Kind',
  'jobs.log.method': 'Method',
  'jobs.log.url': 'URL or port',
  'jobs.log.status': 'Status',
  'jobs.log.sent': 'Sent',
  'jobs.log.received': 'Received',
  'jobs.log.duration': 'Duration',
  'jobs.log.stream': 'Stream',
  'jobs.log.via': 'Via',
  'jobs.log.via.webrtc': 'Peer to peer',
  'jobs.log.via.signaling': 'Signaling',
  'jobs.log.via.signalingHint': 'The browser sent this request past the session’s service worker (a synchronous request, a favicon, a hard reload); signaling carried it to the agent.',
  'jobs.log.port': 'port {port}',
  'jobs.log.failed': 'failed',
  'jobs.log.kind.http': 'HTTP',
  'jobs.log.kind.tcp': 'TCP',

  // account
  'account.heading': 'Account',
  'account.password.heading': 'Password',
  'account.password.current': 'Current password',
  'account.password.new': 'New password',
  'account.password.newHint': 'At least 10 characters.',
  'account.password.submit': 'Change password',
  'account.password.changed': 'Password changed. Your other logins have ended.',
  'account.totp.heading': 'Two-factor login',
  'account.totp.on.one': 'Two-factor login is on ({count} recovery code left).',
  'account.totp.on.other': 'Two-factor login is on ({count} recovery codes left).',
  'account.totp.off': 'Two-factor login is off. Turn it on so a stolen password is not enough to sign in.',
  'account.totp.start': 'Turn on two-factor login',
  'account.totp.addKey': 'Add this key to your authenticator app, then enter a code from it.',
  'account.totp.key': 'Key',
  'account.totp.link': 'Open in an authenticator app',
  'account.totp.code': 'Code from the app',
  'account.totp.verify': 'Verify and turn on',
  'account.totp.turnedOn': 'Two-factor login is on.',
  'account.totp.recovery': 'Recovery codes: each signs you in once without the app. Keep them somewhere safe; they are shown only now.',
  'account.totp.offPassword': 'Password, to turn two-factor login off',
  'account.totp.turnOff': 'Turn off',
  'account.totp.turnedOff': 'Two-factor login is off.',
  'account.tokens.heading': 'API tokens',
  'account.tokens.intro': 'Tokens let the porthole command and scripts act as you, with the scopes you choose.',
  'account.tokens.col.name': 'Name',
  'account.tokens.col.scopes': 'Scopes',
  'account.tokens.col.created': 'Created',
  'account.tokens.col.expires': 'Expires',
  'account.tokens.col.actions': 'Actions',
  'account.tokens.never': 'Never',
  'account.tokens.empty': 'No API tokens. Create one below, or run porthole login on your computer.',
  'account.tokens.name': 'Token name',
  'account.tokens.scopes': 'Scopes',
  'account.tokens.scope.read': 'read — list devices and jobs',
  'account.tokens.scope.sessions': 'sessions — open devices',
  'account.tokens.scope.manage': 'manage — change settings',
  'account.tokens.create': 'Create token',
  'account.tokens.created': 'New token, shown only now: {token}',
  'account.tokens.revoke': 'Revoke',
  'account.tokens.revokeLabel': 'Revoke token {name}',
  'account.tokens.revoked': 'Token {name} revoked.',

  // admin
  'admin.heading': 'Administration',
  'admin.sections': 'Sections',
  'admin.users': 'Users',
  'admin.sites': 'Sites',
  'admin.agents': 'Agents',
  'admin.audit': 'Audit log',
  'admin.users.col.name': 'Name',
  'admin.users.col.admin': 'Administrator',
  'admin.users.col.totp': 'Two-factor',
  'admin.users.col.roles': 'Roles',
  'admin.users.col.actions': 'Actions',
  'admin.users.yes': 'Yes',
  'admin.users.no': 'No',
  'admin.users.on': 'On',
  'admin.users.off': 'Off',
  'admin.users.disabledTag': 'disabled',
  'admin.users.you': 'you',
  'admin.users.noRoles': 'No roles',
  'admin.users.rolesAt': '{site}: {roles}',
  'admin.users.disable': 'Disable',
  'admin.users.enable': 'Enable',
  'admin.users.delete': 'Delete',
  'admin.users.deleteConfirm': 'Delete {name}? Their logins and tokens end now.',
  'admin.users.resetTotp': 'Reset two-factor',
  'admin.users.disabledDone': '{name} is disabled.',
  'admin.users.enabledDone': '{name} is enabled.',
  'admin.users.deleted': '{name} deleted.',
  'admin.users.totpReset': 'Two-factor login reset for {name}.',
  'admin.users.create.heading': 'Create a user',
  'admin.users.name': 'User name',
  'admin.users.nameHint': 'Lower-case letters, digits and . _ @ -',
  'admin.users.password': 'Initial password',
  'admin.users.passwordHint': 'At least 10 characters; tell the user to change it.',
  'admin.users.admin': 'Administrator',
  'admin.users.create': 'Create user',
  'admin.users.created': 'User {name} created.',
  'admin.users.empty': 'No users yet.',
  'admin.roles.heading': 'Roles at a site',
  'admin.roles.intro': 'Configurers turn remote access on and off for the site’s devices; technicians open them.',
  'admin.roles.user': 'User',
  'admin.roles.site': 'Site',
  'admin.roles.configurer': 'Remote Technician Configurer',
  'admin.roles.technician': 'Remote Technician User',
  'admin.roles.save': 'Save roles',
  'admin.roles.saved': 'Roles of {user} at {site} saved.',
  'admin.roles.needSite': 'Create a site first, under Sites.',
  'admin.sites.col.name': 'Name',
  'admin.sites.col.id': 'ID',
  'admin.sites.col.actions': 'Actions',
  'admin.sites.delete': 'Delete',
  'admin.sites.deleteConfirm': 'Delete the site {name}? Its agents become unassigned.',
  'admin.sites.deleted': 'Site {name} deleted.',
  'admin.sites.create.heading': 'Create a site',
  'admin.sites.name': 'Site name',
  'admin.sites.nameHint': 'The customer or location, as technicians know it.',
  'admin.sites.create': 'Create site',
  'admin.sites.created': 'Site {name} created.',
  'admin.sites.empty': 'No sites yet. Create one for each customer or location below.',
  'admin.agents.col.agent': 'Agent',
  'admin.agents.col.status': 'Connection',
  'admin.agents.col.devices': 'Devices',
  'admin.agents.col.site': 'Site',
  'admin.agents.col.actions': 'Actions',
  'admin.agents.connected': 'Connected',
  'admin.agents.notConnected': 'Not connected',
  'admin.agents.noSite': 'No site',
  'admin.agents.siteLabel': 'Site of agent {name}',
  'admin.agents.assigned': 'Agent {name} now belongs to {site}.',
  'admin.agents.unassigned': 'Agent {name} belongs to no site now.',
  'admin.agents.revoke': 'Revoke',
  'admin.agents.revokeLabel': 'Revoke agent {name}',
  'admin.agents.revokeConfirm': 'Revoke agent {name}? It is disconnected now and refused from then on; enrolling it again needs a new token.',
  'admin.agents.revoked': 'Agent {name} revoked.',
  'admin.agents.revokedDisconnected': 'Agent {name} revoked and disconnected.',
  'admin.agents.empty': 'No agents yet. Enroll the first one below: it runs at the customer’s site and reaches their devices.',
  'admin.enroll.heading': 'Enroll an agent',
  'admin.enroll.intro': 'Makes a one-time token and the command to run on the machine at the site.',
  'admin.enroll.site': 'Site',
  'admin.enroll.agent': 'Agent ID (optional)',
  'admin.enroll.name': 'Name (optional)',
  'admin.enroll.hours': 'Valid for (hours)',
  'admin.enroll.submit': 'Create enrollment token',
  'admin.enroll.run': 'Run this on the machine at the site, as root, then start the agent with porthole-agent run. The token is shown only now.',
  'admin.enroll.for': 'For agent {agent} at {site}; the token works once, until {time}.',
  'admin.enroll.copy': 'Copy',
  'admin.enroll.copied': 'Copied',
  'admin.enroll.done': 'Done',
  'admin.audit.col.seq': '#',
  'admin.audit.col.time': 'Time',
  'admin.audit.col.who': 'Who',
  'admin.audit.col.what': 'What',
  'admin.audit.col.target': 'Target',
  'admin.audit.col.site': 'Site',
  'admin.audit.col.detail': 'Detail',
  'admin.audit.empty': 'Nothing recorded yet. Administrative changes appear here as they happen.',
  'admin.loadFailed': 'Could not load this section.',
  'audit.agent.assign': 'Agent moved to a site',
  'audit.agent.enroll': 'Agent enrolled',
  'audit.agent.enrollment.create': 'Enrollment token created',
  'audit.agent.revoke': 'Agent revoked',
  'audit.device.disable': 'Remote access turned off',
  'audit.device.enable': 'Remote access turned on',
  'audit.session.open': 'Session opened',
  'audit.session.terminate': 'Session terminated',
  'audit.site.create': 'Site created',
  'audit.site.delete': 'Site deleted',
  'audit.token.create': 'API token created',
  'audit.token.revoke': 'API token revoked',
  'audit.user.create': 'User created',
  'audit.user.delete': 'User deleted',
  'audit.user.roles': 'Roles changed',
  'audit.user.totp.enable': 'Two-factor login turned on',
  'audit.user.update': 'User changed',
  'audit.actor.system': 'The server',
  'audit.actor.cli': 'porthole-signaling admin',

  'role.configurer': 'Remote Technician Configurer',
  'role.user': 'Remote Technician User',

  'common.saving': 'Saving…',
  'common.saved': 'Saved.',
  'common.loading': 'Loading…',

  // what failed
  'action.login': 'Could not sign in.',
  'action.mfa': 'Could not sign in.',
  'action.devices.load': 'Could not load the devices.',
  'action.device.toggle': 'Could not change {name}.',
  'action.device.open': 'Could not open {name}.',
  'action.jobs.load': 'Could not load the jobs.',
  'action.job.load': 'Could not load the job.',
  'action.job.verify': 'Could not verify the log.',
  'action.job.terminate': 'Could not terminate the session.',
  'action.account.load': 'Could not load your account.',
  'action.password.change': 'Could not change the password.',
  'action.totp.start': 'Could not start two-factor login.',
  'action.totp.verify': 'Could not turn on two-factor login.',
  'action.totp.off': 'Could not turn off two-factor login.',
  'action.token.create': 'Could not create the token.',
  'action.token.revoke': 'Could not revoke the token.',
  'action.admin.load': 'Could not load this section.',
  'action.user.create': 'Could not create the user.',
  'action.user.update': 'Could not change {name}.',
  'action.user.delete': 'Could not delete {name}.',
  'action.roles.save': 'Could not save the roles.',
  'action.site.create': 'Could not create the site.',
  'action.site.delete': 'Could not delete the site.',
  'action.agent.assign': 'Could not move the agent.',
  'action.agent.revoke': 'Could not revoke {name}.',
  'action.enroll.create': 'Could not create the enrollment token.',

  // why, by stable code (proto/errors.go)
  'err.bad_message': 'The server did not accept these values. Check them and try again.',
  'err.too_large': 'That is more than the server accepts at once.',
  'err.unsupported': 'The server does not support this. It may be a different version; reload the page.',
  'err.unauthorized': 'You are not signed in any more. Sign in again.',
  'err.forbidden': 'Your roles do not allow this. Ask an administrator if you need it.',
  'err.not_found': 'It does not exist any more. Reload the page.',
  'err.agent_offline': 'The device’s agent is not connected. Try again when the device shows Reachable.',
  'err.session_not_found': 'The session does not exist any more.',
  'err.session_ended': 'The session is over.',
  'err.device_not_found': 'The agent no longer declares this device.',
  'err.port_not_allowed': 'The device does not declare that port.',
  'err.device_failed': 'The device did not answer as expected. Look at its status under Devices.',
  'err.device_timeout': 'The device did not answer in time. Try again in a moment.',
  'err.bad_request': 'The agent refused the request.',
  'err.canceled': 'It was cancelled.',
  'err.rate_limited': 'Too many attempts. Wait a minute, then try again.',
  'err.unavailable': 'The device’s agent did not answer in time. Try again in a moment.',
  'err.internal': 'Something went wrong on the server. Try again; if it keeps happening, tell your administrator.',
  'err.audit_backlog': 'The agent cannot record more right now, so it serves nothing until it can. Try again in a moment.',
  'err.exists': 'That name or ID is taken already; choose another.',
  'err.session_in_use': 'This session is already open in another window. Use that window, or end the session there and open the device again.',
  'err.network': 'The server did not answer. Check your connection and try again.',
  'err.unknown': 'Something went wrong; the server answered with status {status}. Try again, and if it keeps happening, tell your administrator.',
  // why, for one action
  'err.login.unauthorized': 'The user name or password is wrong.',
  'err.mfa.unauthorized': 'That code is wrong or used already. Enter the current one.',
  'err.mfa.expired': 'The sign-in took too long. Start again.',
  'err.password.change.unauthorized': 'The current password is wrong.',
  'err.totp.verify.unauthorized': 'That code is wrong. Enter the current one from the app.',
  'err.totp.verify.bad_message': 'That code is wrong. Enter the current one from the app.',
  'err.totp.off.unauthorized': 'The password is wrong.',
  'err.user.create.exists': 'A user with this name exists already; choose another name.',
  'err.user.create.bad_message': 'Check the user name (lower-case letters, digits and . _ @ -) and that the password has at least 10 characters.',
  'err.user.update.bad_message': 'Administrators cannot disable or demote themselves.',
  'err.user.delete.bad_message': 'Administrators cannot delete themselves.',
  'err.site.create.exists': 'A site with this name exists already; choose another name.',
  'err.site.create.bad_message': 'A site name has 1 to 128 characters.',
  'err.token.create.bad_message': 'A token needs a name (1 to 64 characters) and at least one scope.',
  'err.enroll.create.exists': 'An agent with this ID exists already; leave the ID empty or choose another.',
  'err.enroll.create.bad_message': 'Check the agent ID (letters, digits and . _ : -) and that the hours are between 0.1 and 168.',
  'err.device.open.forbidden': 'Remote access is off for this device, or your roles at its site do not allow opening it.',
  'err.device.toggle.forbidden': 'Only configurers of the device’s site may change this.',
  'err.job.terminate.session_ended': 'The session had ended already.',
};

/** The active catalog; a translation would replace it. */
let catalog = en;
let locale = 'en';

/** useCatalog(messages, locale): switch the language (keys missing there fall back to English). */
export function useCatalog(messages, lang) {
  catalog = { ...en, ...messages };
  locale = lang || 'en';
}

/** has(key) reports whether the catalog has key. */
export function has(key) {
  return Object.hasOwn(catalog, key);
}

/** format('Hello {name}', {name: 'x'}) → 'Hello x'; unknown placeholders stay as they are. */
export function format(text, params = {}) {
  return text.replace(/\{(\w+)\}/g, (m, k) => (Object.hasOwn(params, k) ? String(params[k]) : m));
}

/**
 * t(key, params) → the text of key with its placeholders filled. A
 * params.count picks key.one / key.other by the locale's plural rules. A
 * missing key returns the key itself (a test catches it first).
 */
export function t(key, params = {}) {
  let k = key;
  if (typeof params.count === 'number' && !has(k)) {
    const form = new Intl.PluralRules(locale).select(params.count);
    k = has(`${key}.${form}`) ? `${key}.${form}` : `${key}.other`;
  }
  return has(k) ? format(catalog[k], params) : key;
}

/**
 * errorText(action, err, params) → one or two sentences: what failed and
 * why, from err.code (an APIError's stable code, or 'network'). Never the
 * server's own message or the code itself.
 */
export function errorText(action, err, params = {}) {
  const code = err?.code || 'network';
  const p = { status: err?.status || '?', ...params };
  const what = has(`action.${action}`) ? t(`action.${action}`, p) : '';
  let why;
  if (has(`err.${action}.${code}`)) why = t(`err.${action}.${code}`, p);
  else if (has(`err.${code}`)) why = t(`err.${code}`, p);
  else why = t('err.unknown', p);
  return what ? `${what} ${why}` : why;
}

/**
 * applyMessages(root) fills every element under root that names a key:
 * data-msg="key" sets its text; data-msg-attr="attr:key;attr:key" sets
 * attributes (placeholder, aria-label, title).
 */
export function applyMessages(root) {
  for (const e of root.querySelectorAll('[data-msg]')) e.textContent = t(e.dataset.msg);
  for (const e of root.querySelectorAll('[data-msg-attr]')) {
    for (const pair of e.dataset.msgAttr.split(';')) {
      const [attr, key] = pair.split(':').map((s) => s.trim());
      if (attr && key) e.setAttribute(attr, t(key));
    }
  }
}
