// Shows only the chosen kind's connector settings in the operator forms. Without it every kind's settings
// show, each in its own fieldset, and the server reads only the chosen kind's.
(function () {
  "use strict";
  var kind = document.querySelector("form select[name=kind]");
  if (!kind) { return; }
  function show() {
    document.querySelectorAll("fieldset.kind-settings").forEach(function (set) {
      var other = set.getAttribute("data-kind") !== kind.value;
      set.hidden = other;
      set.disabled = other;
    });
  }
  kind.addEventListener("change", show);
  show();
}());
