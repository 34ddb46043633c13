// The walled-garden page follows the reconnection live: it asks where the connection is
// every second and says so; once online it stops. A failed request (the router is
// reconnecting, so this address is briefly gone) is simply tried again.
(function () {
  "use strict";
  var box = document.getElementById("live-state");
  if (!box) { return; }
  var url = box.getAttribute("data-url");
  function show(state) {
    box.setAttribute("data-state", state);
    box.className = "state" + (state === "online" ? " online" : "");
    box.textContent = box.getAttribute("data-text-" + state) ||
      box.getAttribute("data-text-unknown");
  }
  function poll() {
    fetch(url, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : {state: "unknown"}; })
      .then(function (data) { show(data.state); if (data.state !== "online") { later(); } })
      .catch(function () { show("unknown"); later(); });
  }
  function later() { window.setTimeout(poll, 1000); }
  later();
})();
