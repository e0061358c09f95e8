// The page's API (window.Switchboard) and start-up. Calls made before this script ran are taken from an array left in
// window.Switchboard (e.g. window.Switchboard = [["open"], ["setContext", {...}]]); anything else left there is replaced.
var queued = W.Switchboard;
W.Switchboard = {
  open: function () { setOpen(true); },
  close: function () { setOpen(false); },
  send: send,
  identify: function (jwt) {
    if (!jwt || typeof jwt != 'string') return Promise.reject(fail({ code: 'request.invalid', message: 'identify needs a JWT' }));
    return S.ready.then(function () {
      if (S.dead) throw S.dead;
      return ident(jwt);
    });
  },
  reset: forget,
  setContext: function (o) { S.ctx = o && typeof o == 'object' ? o : null; },
  on: function (ev, fn) {
    (S.lis[ev] = S.lis[ev] || []).push(fn);
    if (ev == 'ready' && S.ok) setTimeout(fn);
    return function () { S.lis[ev] = S.lis[ev].filter(function (x) { return x != fn; }); };
  }
};

function mount() {
  D.body.append(host);
  // In the top layer when the browser can, above anything the host page stacks; else z-index 2147483647.
  try {
    host.popover = 'manual';
    host.showPopover();
  } catch (e) {}
  if (attr('open') == 'true') setOpen(true);
  if (Array.isArray(queued)) queued.forEach(function (c) {
    try { W.Switchboard[c[0]].apply(null, c.slice(1)); } catch (e) {}
  });
}
S.ready = boot();
if (D.body) mount();
else D.addEventListener('DOMContentLoaded', mount);
