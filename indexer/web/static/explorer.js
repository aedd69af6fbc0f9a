// The explorer's live updates (indexer/web/app.py): a page's EventSource swaps in re-rendered fragments.
// A static file, not an inline script: the pages' Content-Security-Policy allows scripts from 'self' only.
(function () {
  var b = document.body, state = document.getElementById("live-state");
  var url = "/explorer/stream?page=" + encodeURIComponent(b.dataset.page) + "&key=" + encodeURIComponent(b.dataset.key) +
            "&after=" + encodeURIComponent(b.dataset.after);
  var es = new EventSource(url);
  es.onopen = function () { state.textContent = "live"; state.className = "live-state on"; };
  es.onerror = function () { state.textContent = "reconnecting…"; state.className = "live-state"; };
  es.addEventListener("update", function (e) {
    var d = JSON.parse(e.data);
    Object.keys(d.fragments).forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.outerHTML = d.fragments[id]; }
    });
    b.dataset.after = d.last;
    state.textContent = "live"; state.className = "live-state on";
  });
})();
