// dirsync admin page: a running sync's progress, polled once a second;
// when the run ends, the page reloads to show its result.
(function () {
  var el = document.getElementById("progress");
  if (!el) return;
  var id = el.getAttribute("data-run");
  function tick() {
    fetch("/ui/runs/" + id + "/progress", { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (p) {
        if (p.status !== "queued" && p.status !== "running") { location.reload(); return; }
        var rate = p.seconds > 0 ? Math.round(p.read / p.seconds) : 0;
        el.textContent = p.status + ": " + p.read + " entries read in " + p.seconds.toFixed(1) + " s (" + rate + "/s)";
        setTimeout(tick, 1000);
      })
      .catch(function () { setTimeout(tick, 2000); });
  }
  tick();
})();
