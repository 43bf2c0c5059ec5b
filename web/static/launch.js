// Follows a launch through the broker's server-sent events until it is ready, failed or stopped, with the
// time since it was requested.
(function () {
  "use strict";
  var box = document.getElementById("launch");
  if (!box || !window.EventSource) { return; }
  var FINAL = ["ready", "failed", "cancelled", "stopped"];
  var PLAIN = {requested: "Requested", routed: "Chosen a service", submitted: "Asked the service to start",
               starting: "Starting", ready: "Ready", failed: "Failed", cancelled: "Cancelled", stopped: "Stopped"};
  var STEP = {requested: 5, routed: 15, submitted: 30, starting: 50};
  if (FINAL.indexOf(box.dataset.state) >= 0) { return; }
  var list = document.getElementById("events");
  var bar = document.getElementById("bar");
  var elapsed = document.getElementById("elapsed");
  var created = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(box.dataset.created) ? box.dataset.created : box.dataset.created + "Z");
  var seen = {};
  Array.prototype.forEach.call(list.children, function (li) { seen[li.dataset.id] = true; });

  function tick() {
    var seconds = Math.max(0, Math.round((Date.now() - created) / 1000));
    elapsed.textContent = "· " + (seconds >= 60 ? Math.floor(seconds / 60) + " min " : "") + (seconds % 60) + " s so far";
  }
  var timer = isNaN(created) ? null : window.setInterval(tick, 1000);
  if (timer) { tick(); }

  function show(event) {
    if (seen[event.id]) { return; }
    seen[event.id] = true;
    var li = document.createElement("li");
    var time = document.createElement("time");
    time.setAttribute("datetime", event.at);
    time.textContent = event.at.substring(11, 19) + " UTC";
    if (window.pbLocalTime) { window.pbLocalTime(time); }
    li.appendChild(time);
    li.appendChild(document.createTextNode(" " + event.message));
    list.appendChild(li);
    var state = document.getElementById("state");
    state.textContent = PLAIN[event.state] || event.state;
    state.className = "state state-" + event.state;
    var percent = /\((\d+)%\)$/.exec(event.message);
    bar.value = event.state === "ready" ? 100 : Math.max(bar.value, percent ? 30 + +percent[1] * 0.7 : STEP[event.state] || 0);
  }

  function finish() {
    if (timer) { window.clearInterval(timer); }
    elapsed.hidden = true;
    var typical = document.getElementById("typical");
    if (typical) { typical.hidden = true; }
    fetch("/sessions/" + encodeURIComponent(box.dataset.id), {credentials: "same-origin"})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        // the page as the server now renders it: state, Open/Continue, failure and Stop in one place
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("launch");
        if (!fresh) { return; }
        box.replaceWith(fresh);
        Array.prototype.forEach.call(fresh.querySelectorAll("time[datetime]"), function (t) {
          if (window.pbLocalTime) { window.pbLocalTime(t); }
        });
        var open = document.getElementById("open");
        var failure = document.getElementById("failure");
        if (open && !document.getElementById("open-line").hidden) { open.focus(); }
        else if (failure && !failure.hidden) { failure.querySelector("a").focus(); }
      });
  }

  var source = new EventSource("/api/v1/launches/" + encodeURIComponent(box.dataset.id) + "/events");
  source.onmessage = function (e) { show(JSON.parse(e.data)); };
  FINAL.concat(["requested", "routed", "submitted", "starting"]).forEach(function (name) {
    source.addEventListener(name, function (e) {
      var event = JSON.parse(e.data);
      show(event);
      if (FINAL.indexOf(event.state) >= 0) { source.close(); finish(); }
    });
  });
  source.onerror = function () {
    // the stream ends when the launch is final; if it broke earlier, the browser reconnects by itself
    if (source.readyState === EventSource.CLOSED) { finish(); }
  };
}());
