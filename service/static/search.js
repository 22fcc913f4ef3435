// Progressive touches only: every page works without this file.
(function () {
  "use strict";
  var box = document.getElementById("q");
  // A plain `/articles/ID#start-end` link (no ?hl=) is turned into the server-highlighted form.
  var m = /^#(\d+)-(\d+)$/.exec(location.hash);
  if (m && document.body.classList.contains("page-article") && !document.getElementById(m[1] + "-" + m[2])) {
    var params = new URLSearchParams(location.search);
    if (!params.has("hl")) {
      params.set("hl", m[1] + "-" + m[2]);
      location.replace(location.pathname + "?" + params.toString() + location.hash);
      return;
    }
  }
  if (box) {
    // Autofocus puts the caret at the start; put it after the query so typing refines it.
    if (document.activeElement === box && box.value) {
      var end = box.value.length;
      box.setSelectionRange(end, end);
    }
    // "/" focuses the search box from anywhere, as on many search sites.
    document.addEventListener("keydown", function (e) {
      var t = e.target.tagName;
      if (e.key === "/" && !e.ctrlKey && !e.metaKey && !e.altKey && t !== "INPUT" && t !== "SELECT" && t !== "TEXTAREA") {
        e.preventDefault();
        box.focus();
        box.select();
      }
    });
  }
  // Focus the cited passage so keyboard and screen-reader users land on it too.
  var target = m && document.getElementById(m[1] + "-" + m[2]);
  if (target) { target.focus({ preventScroll: true }); }
})();
