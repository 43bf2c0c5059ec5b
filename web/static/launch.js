// Follows a launch through the broker's server-sent events until it is ready, failed or stopped.
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
  var seen = {};
  Array.prototype.forEach.call(list.children, function (li) { seen[li.dataset.id] = true; });

  function show(event) {
    if (seen[event.id]) { return; }
    seen[event.id] = true;
    var li = document.createElement("li");
    var time = document.createElement("time");
    time.dateTime = event.at;
    time.textContent = event.at.substring(11, 19);
    li.appendChild(time);
    li.appendChild(document.createTextNode(" " + event.message));
    list.appendChild(li);
    var state = document.getElementById("state");
    state.textContent = PLAIN[event.state] || event.state;
    state.className = "state state-" + event.state;
    var percent = /\((\d+)%\)$/.exec(event.message);
    bar.value = FINAL.indexOf(event.state) >= 0 ? 100 : Math.max(bar.value, percent ? 30 + +percent[1] * 0.7 : STEP[event.state] || 0);
  }

  function finish() {
    fetch("/api/v1/launches/" + encodeURIComponent(box.dataset.id), {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (launch) {
        box.dataset.state = launch.state;
        if (launch.state === "ready" && launch.url) {
          document.getElementById("open").href = launch.url;
          document.getElementById("open-line").hidden = false;
          document.getElementById("open").focus();
        }
        if (launch.error) {
          var error = document.getElementById("error");
          error.textContent = launch.error;
          error.hidden = false;
        }
        var stop = document.getElementById("stop-form");
        if (stop) {
          if (launch.state === "ready") { stop.querySelector("button").textContent = "Stop"; }
          else { stop.hidden = true; }
        }
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
