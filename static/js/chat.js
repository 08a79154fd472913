// Small behaviours htmx does not cover: Enter to send, copy buttons on code
// blocks, keeping the transcript scrolled, and de-duplicating re-pushed messages.
(function () {
  "use strict";

  function scrollToEnd() {
    var wrap = document.querySelector(".transcript-wrap");
    if (wrap) wrap.scrollTop = wrap.scrollHeight;
  }

  function addCopyButtons(root) {
    root.querySelectorAll(".markdown pre").forEach(function (pre) {
      if (pre.querySelector("button.copy")) return;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy small";
      button.textContent = "Copy";
      button.addEventListener("click", function () {
        var code = pre.querySelector("code") || pre;
        navigator.clipboard.writeText(code.innerText).then(function () {
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = "Copy"; }, 1500);
        });
      });
      pre.appendChild(button);
    });
  }

  // A message can be pushed again (an activity retried after it was recorded):
  // keep the newest copy of each id.
  function dedupeTranscript() {
    var seen = {};
    var items = document.querySelectorAll("#transcript > article[id], #approvals > [id]");
    for (var i = items.length - 1; i >= 0; i--) {
      if (seen[items[i].id]) items[i].remove();
      else seen[items[i].id] = true;
    }
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (target.matches && target.matches("#composer textarea") && event.key === "Enter"
        && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (target.value.trim()) target.form.requestSubmit();
    }
  });

  // Times in pages and messages read in the reader's time zone (config.errors).
  function rememberTimeZone() {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("tz=" + encodeURIComponent(zone)) < 0) {
      document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
    }
  }
  rememberTimeZone();

  document.addEventListener("DOMContentLoaded", function () {
    addCopyButtons(document);
    scrollToEnd();
  });

  document.addEventListener("htmx:load", function (event) {
    addCopyButtons(event.target);
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    dedupeTranscript();
    addCopyButtons(document);
    scrollToEnd();
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.target.id === "transcript") {
      dedupeTranscript();
      scrollToEnd();
      var box = document.querySelector("#composer textarea");
      if (box) box.focus();
    }
  });
})();
