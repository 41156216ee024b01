/* Live countdowns: every <time data-countdown datetime="…"> on the page is rewritten once a
   second ("in 3 h 12 min", "in 4 min 05 s", "expired"). The server renders the same words, so
   the page reads right without JavaScript; this only keeps them current.

   data-warn-seconds="N": the countdown-urgent class inside the last N seconds (red).
   data-expired-text="…": what to say once the moment has passed (default "expired").

   Elements are looked up on every tick, so rows swapped in by htmx tick without any re-binding;
   a swap also ticks at once so new rows never show stale text for a second. No aria-live: a
   screen reader announcing every second would be noise; the text is read when reached. */
(function () {
  "use strict";

  // Correct for a client clock that disagrees with the server's (body data-server-time, epoch s).
  var skewMs = 0;
  var serverTime = parseInt(document.body && document.body.dataset.serverTime, 10);
  if (!isNaN(serverTime)) {
    var offset = serverTime * 1000 - Date.now();
    if (Math.abs(offset) > 2000) skewMs = offset;
  }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  // Mirrors connections/templatetags/countdown.py `describe_remaining`.
  function describe(seconds) {
    var d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
    var m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    if (d >= 2) return "in " + d + " d " + h + " h";
    if (seconds >= 3600) return "in " + (d * 24 + h) + " h " + m + " min";
    if (seconds >= 60) return "in " + m + " min " + pad(s) + " s";
    return "in " + s + " s";
  }

  function tick() {
    var now = Date.now() + skewMs;
    var nodes = document.querySelectorAll("time[data-countdown]");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i];
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) continue;
      var left = Math.floor((at - now) / 1000);
      var warn = parseInt(el.dataset.warnSeconds, 10);
      var text = left > 0 ? describe(left) : (el.dataset.expiredText || "expired");
      if (el.textContent !== text) el.textContent = text;
      el.classList.toggle("countdown-expired", left <= 0);
      el.classList.toggle("countdown-urgent", left > 0 && !isNaN(warn) && left <= warn);
    }
  }

  tick();
  window.setInterval(tick, 1000);
  document.addEventListener("htmx:afterSettle", tick);
  window.tokenadminCountdown = { tick: tick, describe: describe };
})();
