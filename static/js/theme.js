// Light or dark: the system's setting until the user picks one with the toggle.
// A signed-in user's choice is rendered on <html> by the server (data-theme-stored);
// before login it is kept in localStorage and applied here, before the first paint.
(function () {
  "use strict";
  var KEY = "theme";
  var root = document.documentElement;

  function stored() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; }
  }

  if (!root.hasAttribute("data-theme-stored")) {
    var kept = stored();
    if (kept === "light" || kept === "dark") root.setAttribute("data-theme", kept);
  }

  function effective() {
    var chosen = root.getAttribute("data-theme");
    if (chosen === "light" || chosen === "dark") return chosen;
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; }
    catch (e) { return ""; }
  }

  function showState() {
    var dark = effective() === "dark";
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.setAttribute("aria-pressed", dark ? "true" : "false");
    });
  }

  function choose(theme, button) {
    root.setAttribute("data-theme", theme);
    try { localStorage.setItem(KEY, theme); } catch (e) { /* private mode: this page only */ }
    showState();
    var url = button.getAttribute("data-save-url");
    if (!url) return;
    fetch(url, {
      method: "POST",
      headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/x-www-form-urlencoded" },
      body: "theme=" + encodeURIComponent(theme),
      credentials: "same-origin",
    }).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
    }).catch(function () {
      button.setAttribute("title", "Not saved: the server did not answer. It applies to this browser only.");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    showState();
    document.addEventListener("click", function (event) {
      var button = event.target.closest && event.target.closest("[data-theme-toggle]");
      if (button) choose(effective() === "dark" ? "light" : "dark", button);
    });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", showState);
  });
})();
