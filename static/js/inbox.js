// The review inbox's side pane, as in a mail client: the focused request (chosen by
// click or j / k in static/js/reviews.js) is loaded beside the list with its
// arguments, the agent's reason, the conversation and the decision controls.
// On narrow screens the pane is hidden and the request's own page opens instead.
(function () {
  "use strict";

  function pane() { return document.getElementById("detail-pane"); }

  function paneShown() {
    var element = pane();
    return !!element && window.getComputedStyle(element).display !== "none";
  }

  function show(row) {
    var element = pane();
    var link = row && row.querySelector(".open-link");
    if (!element || !link || !paneShown() || element.getAttribute("data-showing") === row.id) return;
    element.setAttribute("data-showing", row.id);
    window.htmx.ajax("GET", link.getAttribute("href"), { target: "#detail-pane", swap: "innerHTML" });
  }

  document.addEventListener("focusin", function (event) {
    var target = event.target;
    if (target.matches && target.matches("#approval-rows > tr.approval-row")) show(target);
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key === "Enter" && target.matches && target.matches("#approval-rows > tr.approval-row")) {
      event.preventDefault();
      if (!paneShown()) {
        window.location.href = target.querySelector(".open-link").getAttribute("href");
        return;
      }
      show(target);
      // The decision controls first (querySelector takes the first in the page's order).
      var first = pane().querySelector("#decision-forms textarea") || pane().querySelector("button, a");
      (first || pane()).focus();
    } else if (event.key === "Escape" && target.closest && target.closest("#detail-pane")) {
      var row = document.querySelector("#approval-rows > tr.approval-row.focused");
      if (row) { event.preventDefault(); row.focus(); }
    }
  });

  // The summary link fills the pane when there is one, and opens the page otherwise.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("#approval-rows .open-link");
    if (!link || !paneShown() || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    show(link.closest("tr.approval-row"));
  });
})();
