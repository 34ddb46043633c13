// The walled-garden page follows the reconnection live: it asks where the connection is
// every second and says so; once online it stops. A failed request (the router is
// reconnecting, so this address is briefly gone) is simply tried again. The login form the
// garden shows an address it does not know (yet: a re-dialled session's Accounting-Start may
// still be on its way) asks too, for a minute, and reloads once the address is known.
(function () {
  "use strict";
  var box = document.getElementById("live-state");
  if (!box) { return; }
  var url = box.getAttribute("data-url");
  var reload = box.getAttribute("data-reload") === "1";
  var left = reload ? 60 : 1800;
  function show(state) {
    box.setAttribute("data-state", state);
    box.className = "state" + (state === "online" ? " online" : "");
    box.textContent = box.getAttribute("data-text-" + state) ||
      box.getAttribute("data-text-unknown");
  }
  function poll() {
    left -= 1;
    // a request lost while the router re-dials (its connection gone with the old address)
    // would never answer: give up on it after 4 s and ask again
    var abort = new AbortController();
    var timer = window.setTimeout(function () { abort.abort(); }, 4000);
    fetch(url, {credentials: "same-origin", cache: "no-store", signal: abort.signal})
      .finally(function () { window.clearTimeout(timer); })
      .then(function (r) { return r.ok ? r.json() : {state: "unknown"}; })
      .then(function (data) {
        if (reload) {
          if (data.state !== "unknown") { window.location.reload(); return; }
        } else {
          show(data.state);
          if (data.state === "online") { return; }
        }
        later();
      })
      .catch(function () { if (!reload) { show("unknown"); } later(); });
  }
  function later() { if (left > 0) { window.setTimeout(poll, 1000); } }
  later();
})();
