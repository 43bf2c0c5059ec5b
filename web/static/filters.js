// On a narrow screen the search filters start folded behind their "Filters" button, above the results.
(function () {
  "use strict";
  var filters = document.getElementById("filters");
  if (filters && window.matchMedia("(max-width: 720px)").matches) { filters.open = false; }
}());
