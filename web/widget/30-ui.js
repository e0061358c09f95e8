// The widget's DOM: a host element with an open shadow root holding the launcher, the panel (dialog), the transcript (log),
// the status line, the takeover banner, the typing indicator and the composer. Styles come from CSS as a constructable sheet.
var host = h('div', { id: 'switchboard-widget' });
var root = host.attachShadow({ mode: 'open' });
try {
  var sheet = new CSSStyleSheet();
  sheet.replaceSync(CSS);
  root.adoptedStyleSheets = [sheet];
} catch (e) {
  root.append(h('style', { text: CSS }));
}
var dir = attr('dir') || (D.body && D.body.dir) || D.documentElement.dir || getComputedStyle(D.documentElement).direction;
var box = h('div', { class: 'sb', dir: dir == 'rtl' ? 'rtl' : 'ltr' });
var title = h('div', { class: 'head', text: 'Chat' });
var log = h('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Conversation', tabindex: '0' });
var status = h('p', { class: 'status', role: 'status', 'data-state': 'connecting', text: 'Connecting\u2026' });
var act = h('button', { type: 'button', class: 'act', hidden: '' });
var ta = h('textarea', { 'aria-label': 'Message', rows: '1', placeholder: 'Write a message\u2026', enterkeyhint: 'send', maxlength: '10000' });
var sendBtn = h('button', { type: 'button', class: 'send', text: 'Send' });
var panel = h('div', { class: 'panel', role: 'dialog', 'aria-label': 'Chat', id: 'sb-panel', hidden: '' }, [
  title, log, h('div', { class: 'bar' }, [status, act]), h('div', { class: 'comp' }, [ta, sendBtn])
]);
var launcher = h('button', { type: 'button', class: 'launcher', 'aria-label': 'Open chat', 'aria-expanded': 'false', 'aria-controls': 'sb-panel' }, [
  icon('c', 'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z'),
  icon('x', 'M6 6l12 12M18 6L6 18')
]);
var greet = attr('greeting');
greet = greet ? h('div', { class: 'msg assistant greeting' }, [h('div', { class: 'body', text: greet })]) : null;
box.append(panel, launcher);
root.append(box);
clearLog();

function clearLog() {
  S.msgs = {};
  S.turns = {};
  log.replaceChildren();
  if (greet) log.append(greet);
}

function setOpen(o) {
  o = !!o;
  if (S.open == o) return;
  S.open = o;
  panel.hidden = !o;
  box.classList.toggle('open', o);
  box.classList.remove('unread');
  launcher.setAttribute('aria-expanded', o);
  launcher.setAttribute('aria-label', o ? 'Close chat' : 'Open chat');
  if (o) {
    fit();
    scrollEnd();
    ta.focus();
    ensure().catch(function () {});
  } else if (panel.contains(root.activeElement)) launcher.focus();
  emit(o ? 'open' : 'close');
}

// The status line: state is connecting|online|reconnecting|offline|error; action: [label, fn] for a button beside it.
var SAY = { connecting: 'Connecting\u2026', online: 'Connected', reconnecting: 'Connection lost. Reconnecting\u2026', offline: 'You are offline. The chat reconnects when you are back online.' };
function setState(st, text, action) {
  status.dataset.state = st;
  status.textContent = text || SAY[st];
  act.hidden = !action;
  if (action) {
    act.textContent = action[0];
    act.onclick = action[1];
  }
}

function banner(agent) {
  var b = root.querySelector('[data-banner]');
  if (b) b.remove();
  S.agent = agent && agent.name;
  if (agent) title.after(h('div', { class: 'banner', 'data-banner': 'takeover', text: (agent.name || 'Agent') + ' joined' }));
}

// The typing indicator (assistant or agent); it expires by itself after 8 s without news.
function typing(who, on) {
  clearTimeout(S.tt);
  if (S.typ) S.typ.remove();
  S.typ = null;
  if (on) {
    S.typ = h('div', { class: 'typing', 'data-typing': who, text: (who == 'agent' ? S.agent || 'Agent' : 'Assistant') + ' is typing\u2026' });
    log.after(S.typ);
    S.tt = setTimeout(typing, 8000);
  }
}

function note(text) {
  log.append(h('div', { class: 'note', text: text }));
  if (S.follow) scrollEnd();
}

function scrollEnd() {
  log.scrollTop = log.scrollHeight;
}

// Below 480 px the panel is full screen; follow the visual viewport so the on-screen keyboard never hides the composer.
var vv = W.visualViewport;
function fit() {
  var m = vv && W.innerWidth < 480 && S.open;
  panel.style.height = m ? vv.height + 'px' : '';
  panel.style.top = m ? vv.offsetTop + 'px' : '';
  if (m && S.follow) scrollEnd();
}
if (vv) {
  vv.addEventListener('resize', fit);
  vv.addEventListener('scroll', fit);
}

function submit() {
  var t = ta.value;
  if (!t.trim()) return;
  ta.value = '';
  grow();
  send(t).catch(function (e) {
    if (!ta.value && e.code != 'reset') ta.value = t;
  });
}
function grow() {
  ta.style.height = '';
  if (ta.scrollHeight > ta.clientHeight) ta.style.height = Math.min(ta.scrollHeight + 2, 140) + 'px';
}

launcher.onclick = function () { setOpen(!S.open); };
sendBtn.onclick = function () { submit(); ta.focus(); };
ta.addEventListener('input', grow);
ta.addEventListener('keydown', function (e) {
  if (e.key == 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    submit();
  }
});
box.addEventListener('keydown', function (e) {
  if (e.key == 'Escape' && S.open) {
    setOpen(false);
    launcher.focus();
  }
});
log.addEventListener('scroll', function () {
  S.follow = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
});
