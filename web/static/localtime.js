// Times are written in UTC by the server; shown here in the viewer's own time zone, with its name.
(function () {
  "use strict";
  var format;
  try {
    format = new Intl.DateTimeFormat(undefined, {year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
                                                 minute: "2-digit", second: "2-digit", timeZoneName: "short"});
  } catch (e) { return; }
  window.pbLocalTime = function (element) {
    var iso = element.getAttribute("datetime");
    if (!iso) { return; }
    var moment = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + "Z");
    if (!isNaN(moment)) { element.textContent = format.format(moment); element.title = iso; }
  };
  Array.prototype.forEach.call(document.querySelectorAll("time[datetime]"), window.pbLocalTime);
}());
