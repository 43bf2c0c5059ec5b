// On a narrow screen the main navigation folds behind a "Menu" button.
(function () {
  "use strict";
  var button = document.querySelector(".menu-button");
  var links = document.getElementById("nav-links");
  if (!button || !links) { return; }
  document.documentElement.classList.add("js");
  button.hidden = false;
  button.addEventListener("click", function () {
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", open ? "true" : "false");
    links.classList.toggle("open", open);
  });
}());
