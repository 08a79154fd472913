// The reviewer dashboard's keyboard and selection behaviours, live counters,
// relative times, and browser notifications for new requests. htmx does the rest.
(function () {
  "use strict";

  var focusedId = null;
  var focusedIndex = 0;
  var notifiedIds = {};

  var ROW = "#approval-rows > tr.approval-row";
  var DECIDED_ROW = "#approval-rows > tr.approval-row:has(.row-state.decided)";

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll(ROW + ":not(:has(.row-state.decided))"));
  }

  // A decided row is marked, and hidden by CSS, but stays in the page: a request in
  // flight from its forms needs its element to show the answer, and the decision may
  // be pushed again (by this page's own POST and by the socket). It leaves the selection.
  function retireDecidedRows() {
    document.querySelectorAll(DECIDED_ROW).forEach(function (row) {
      var box = row.querySelector("input[name=item]");
      if (box) { box.checked = false; box.disabled = true; }
      row.classList.remove("focused");
    });
  }

  function typing(target) {
    return target && target.closest && target.closest("input, textarea, select, [contenteditable]");
  }

  function focusRow(index) {
    var all = rows();
    document.querySelectorAll(ROW + ".focused").forEach(function (row) {
      row.classList.remove("focused");
    });
    if (!all.length) { focusedId = null; return null; }
    focusedIndex = Math.max(0, Math.min(index, all.length - 1));
    var row = all[focusedIndex];
    row.classList.add("focused");
    focusedId = row.id;
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
    return row;
  }

  function focusedRow() {
    var row = focusedId && document.getElementById(focusedId);
    return row && rows().indexOf(row) >= 0 ? row : null;
  }

  // After a row is decided (here or by someone else) the focus stays at the same place.
  function keepFocus() {
    if (focusedId && !focusedRow()) focusRow(focusedIndex);
  }

  function updateCounts() {
    var all = rows();
    // The list shows a page at a time: the rows not loaded yet are pending too.
    var more = document.getElementById("more-rows");
    var pending = all.length + (more ? parseInt(more.getAttribute("data-hidden"), 10) || 0 : 0);
    var count = document.getElementById("pending-count");
    if (count) count.textContent = String(pending);
    var selected = all.filter(function (row) {
      var box = row.querySelector("input[name=item]");
      row.classList.toggle("selected", !!(box && box.checked));
      return box && box.checked;
    });
    var selectedCount = document.getElementById("selected-count");
    if (selectedCount) selectedCount.textContent = String(selected.length);
    var all_box = document.getElementById("select-all");
    if (all_box) all_box.checked = all.length > 0 && selected.length === all.length;
    document.title = (pending ? "(" + pending + ") " : "") + "Pending approvals · Agent chat";
  }

  function relative(seconds) {
    var abs = Math.abs(seconds);
    if (abs < 60) return Math.round(abs) + " s";
    if (abs < 3600) return Math.floor(abs / 60) + " min";
    if (abs < 86400) return Math.floor(abs / 3600) + " h " + Math.floor((abs % 3600) / 60) + " min";
    return Math.floor(abs / 86400) + " d " + Math.floor((abs % 86400) / 3600) + " h";
  }

  function refreshTimes() {
    var now = Date.now();
    document.querySelectorAll("[data-relative]").forEach(function (el) {
      var when = Date.parse(el.getAttribute("datetime") || el.getAttribute("data-datetime"));
      if (isNaN(when)) return;
      var seconds = (el.getAttribute("data-relative") === "since" ? now - when : when - now) / 1000;
      el.textContent = seconds < 0 && el.getAttribute("data-relative") === "until" ? "0 s" : relative(seconds);
    });
  }

  // A request can arrive over the socket while the page that already lists it loads:
  // keep the newest copy of each row.
  function dedupeRows() {
    var seen = {};
    var all = document.querySelectorAll(ROW);
    for (var i = all.length - 1; i >= 0; i--) {
      if (seen[all[i].id]) all[i].remove();
      else seen[all[i].id] = true;
    }
  }

  function notifyNewRows() {
    document.querySelectorAll(ROW + "[data-fresh]").forEach(function (row) {
      row.removeAttribute("data-fresh");
      row.classList.add("arrived");
      if (notifiedIds[row.id]) return;
      notifiedIds[row.id] = true;
      if (!("Notification" in window) || Notification.permission !== "granted") return;
      var note = new Notification("New approval request", {
        body: row.getAttribute("data-summary") + " — requested by " + row.getAttribute("data-requester"),
        tag: row.id,
      });
      note.onclick = function () {
        window.focus();
        focusRow(rows().indexOf(row));
        note.close();
      };
    });
  }

  function setUpNotificationButton() {
    var button = document.getElementById("notify-button");
    if (!button || !("Notification" in window)) return;
    button.hidden = Notification.permission !== "default";
    button.addEventListener("click", function () {
      Notification.requestPermission().then(function (permission) {
        button.hidden = permission !== "default";
      });
    });
  }

  function click(row, selector) {
    var element = row && row.querySelector(selector);
    if (element) element.click();
  }

  document.addEventListener("keydown", function (event) {
    if (!document.getElementById("approval-rows")) return;
    if (event.key === "Escape" && typing(event.target) && event.target.closest("#approval-rows")) {
      event.target.blur();
      focusRow(focusedIndex);
      return;
    }
    if (typing(event.target) || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    var row = focusedRow();
    switch (event.key) {
      case "j": focusRow(row ? focusedIndex + 1 : 0); break;
      case "k": focusRow(row ? focusedIndex - 1 : 0); break;
      case "a": click(row, ".approve-form button"); break;
      case "r": {
        var reason = row && row.querySelector(".reject-form input[name=reason]");
        if (reason) reason.focus();
        break;
      }
      case "x": {
        var box = row && row.querySelector("input[name=item]");
        if (box) { box.checked = !box.checked; updateCounts(); }
        break;
      }
      case "c": click(row, ".claim-button"); break;
      case "e": click(row, ".edit-link"); break;
      default: return;
    }
    event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest(ROW);
    if (row) focusRow(rows().indexOf(row));
  });

  document.addEventListener("change", function (event) {
    if (event.target.id === "select-all") {
      rows().forEach(function (row) {
        var box = row.querySelector("input[name=item]");
        if (box) box.checked = event.target.checked;
      });
    }
    if (event.target.matches("#select-all, #approval-rows input[name=item]")) updateCounts();
  });

  function afterChange() {
    retireDecidedRows();
    dedupeRows();
    keepFocus();
    notifyNewRows();
    updateCounts();
    refreshTimes();
  }

  document.addEventListener("htmx:wsAfterMessage", afterChange);
  document.addEventListener("htmx:afterRequest", afterChange);

  document.addEventListener("DOMContentLoaded", function () {
    setUpNotificationButton();
    updateCounts();
    refreshTimes();
    setInterval(refreshTimes, 30000);
    rows().forEach(function (row) { notifiedIds[row.id] = true; });
  });
})();
