/* A scan page: rating, comment and previous/next in the order of the index. */
(function () {
  "use strict";
  var QC = window.CohortQC;
  var b = document.body.dataset;
  var scan = { scan_id: b.scanId, site: b.site, sub: b.sub, ses: b.ses };
  var root = b.root;
  var comment = document.getElementById("comment");
  var saved = document.getElementById("saved");
  var buttons = document.querySelectorAll(".rating button[data-rating]");

  function show() {
    var r = QC.loadRatings()[scan.scan_id] || {};
    buttons.forEach(function (btn) {
      btn.setAttribute("aria-pressed", String(btn.dataset.rating === (r.rating || "") && !!r.rating));
    });
    if (document.activeElement !== comment) comment.value = r.comment || "";
    document.body.dataset.rating = r.rating || "";
  }

  function rate(rating) {
    QC.setRating(scan, rating, comment.value);
    saved.textContent = rating ? "rated " + rating : "rating cleared";
    show();
  }

  buttons.forEach(function (btn) {
    btn.addEventListener("click", function () { rate(btn.dataset.rating); });
  });
  var timer = null;
  comment.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { QC.setRating(scan, null, comment.value); saved.textContent = "comment saved"; }, 250);
  });
  comment.addEventListener("blur", function () { QC.setRating(scan, null, comment.value); });

  var order = null, here = -1;
  function link(id, k) {
    var a = document.getElementById(id);
    if (k < 0 || k >= order.hrefs.length) { a.removeAttribute("href"); a.setAttribute("aria-disabled", "true"); return; }
    a.href = root + order.hrefs[k];
  }
  function navigation(o) {
    order = o;
    here = order.ids.indexOf(scan.scan_id);
    if (here < 0) return;
    link("prev", here - 1);
    link("next", here + 1);
    document.getElementById("position").textContent = (here + 1) + " / " + order.ids.length;
  }
  function fromIndex() {  // no order kept by the index (page opened directly): the index's default order
    var s = document.createElement("script");
    s.src = root + "data/index.js";
    s.onload = function () {
      var D = window.COHORT_SCISEG_INDEX, C = {};
      D.columns.forEach(function (c, i) { C[c] = i; });
      var done = D.rows.filter(function (r) { return r[C.status] === "done"; });
      navigation({ ids: done.map(function (r) { return r[C.scan_id]; }), hrefs: done.map(function (r) { return r[C.href]; }) });
    };
    document.head.appendChild(s);
  }
  var kept = QC.loadOrder();
  if (kept && kept.ids.indexOf(scan.scan_id) >= 0) navigation(kept); else fromIndex();

  function go(id) {
    var a = document.getElementById(id);
    if (a.getAttribute("href")) window.location.href = a.href;
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && ev.target === comment) { comment.blur(); return; }
    if (QC.typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var k = ev.key;
    if (k === "j" || k === "ArrowRight") go("next");
    else if (k === "k" || k === "ArrowLeft") go("prev");
    else if (k === "p") rate("pass");
    else if (k === "f") rate("fail");
    else if (k === "a") rate("artifact");
    else if (k === "c") comment.focus();
    else if (k === "i" || k === "Escape") window.location.href = root + "index.html";
    else return;
    ev.preventDefault();
  });
  window.addEventListener("pageshow", show);
  show();
  document.body.dataset.ready = "1";
})();
