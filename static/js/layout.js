// The page shell: the off-canvas conversation list on narrow screens, and flashes
// that can be dismissed and leave by themselves.
(function () {
  "use strict";

  var FLASH_SECONDS = { info: 5, error: 12 };

  // --- Off-canvas conversation list ----------------------------------------
  function menuButton() { return document.querySelector("[data-menu-button]"); }

  function setNavOpen(open, returnFocus) {
    var button = menuButton();
    if (!button) return;
    document.body.classList.toggle("nav-open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
    var sidebar = document.getElementById(button.getAttribute("aria-controls"));
    if (open && sidebar) {
      var first = sidebar.querySelector("a, button, input");
      if (first) first.focus();
    } else if (returnFocus) {
      button.focus();
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!target.closest) return;
    if (target.closest("[data-menu-button]")) {
      setNavOpen(!document.body.classList.contains("nav-open"), false);
    } else if (target.closest("[data-nav-backdrop]")) {
      setNavOpen(false, true);
    } else if (target.closest(".flash-close")) {
      dismiss(target.closest(".flash"));
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && document.body.classList.contains("nav-open")) {
      setNavOpen(false, true);
    }
  });

  // Wider than the breakpoint the list is always shown: forget an open drawer.
  window.matchMedia("(min-width: 721px)").addEventListener("change", function (query) {
    if (query.matches) setNavOpen(false, false);
  });

  // --- Flashes -------------------------------------------------------------
  // Every flash replaces the one #flash region (hx-swap outerHTML), so dismissing
  // puts an empty region back for the next one.
  function dismiss(flash) {
    if (!flash || !flash.isConnected) return;
    var empty = document.createElement("div");
    empty.id = "flash";
    flash.replaceWith(empty);
  }

  function arm(flash) {
    if (flash.querySelector(".flash-close")) return;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "flash-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    flash.appendChild(close);
    var seconds = FLASH_SECONDS[flash.classList.contains("error") ? "error" : "info"];
    var timer = setTimeout(function () { dismiss(flash); }, seconds * 1000);
    // Someone reading it (pointer over it, or focus inside) keeps it until they leave.
    function hold() { clearTimeout(timer); }
    function release() { clearTimeout(timer); timer = setTimeout(function () { dismiss(flash); }, 2000); }
    flash.addEventListener("mouseenter", hold);
    flash.addEventListener("focusin", hold);
    flash.addEventListener("mouseleave", release);
    flash.addEventListener("focusout", release);
  }

  function armAll() {
    document.querySelectorAll(".flash").forEach(arm);
  }

  document.addEventListener("DOMContentLoaded", function () {
    armAll();
    new MutationObserver(armAll).observe(document.body, { childList: true, subtree: true });
  });
})();
