// Small behaviours htmx does not cover: Enter to send, copy buttons on code
// blocks and whole replies, starter prompts, opening a conversation at a searched message, keeping the transcript scrolled, and de-duplicating re-pushed messages.
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

  // A starter prompt on an empty chat is sent as if typed.
  document.addEventListener("click", function (event) {
    var starter = event.target.closest && event.target.closest("button.starter");
    var box = document.querySelector("#composer textarea");
    if (!starter || !box) return;
    box.value = starter.getAttribute("data-prompt");
    box.form.requestSubmit();
  });

  // The whole reply, as the Markdown the model wrote (kept in a <template>).
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.copy-reply");
    if (!button) return;
    var source = button.closest("article").querySelector("template.reply-source");
    if (!source) return;
    navigator.clipboard.writeText(source.content.textContent).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    }, function () {
      button.textContent = "Copy failed";
    });
  });

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

  // A search result links to its message (#msg-<id>): open the conversation there.
  // Called again after each live update: a re-pushed copy of it replaces the first.
  function showLinkedMessage() {
    var match = /^#(msg-[0-9a-f-]{36})$/.exec(window.location.hash);
    var target = match && document.getElementById(match[1]);
    if (!target) return false;
    if (target.classList.contains("found")) return true;
    target.classList.add("found");
    target.setAttribute("tabindex", "-1");
    target.scrollIntoView({ block: "center" });
    target.focus({ preventScroll: true });
    return true;
  }

  document.addEventListener("DOMContentLoaded", function () {
    addCopyButtons(document);
    if (!showLinkedMessage()) scrollToEnd();
  });

  document.addEventListener("htmx:load", function (event) {
    addCopyButtons(event.target);
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    dedupeTranscript();
    addCopyButtons(document);
    if (!showLinkedMessage()) scrollToEnd();
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.target.id === "transcript") {
      // Writing again: follow the conversation, no longer the searched message.
      if (window.location.hash) {
        history.replaceState(null, "", window.location.pathname + window.location.search);
      }
      dedupeTranscript();
      scrollToEnd();
      var box = document.querySelector("#composer textarea");
      if (box) box.focus();
    }
  });
})();
