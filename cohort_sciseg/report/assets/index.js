/* The scan index: a virtual table (only the visible rows are in the DOM), so it opens fast at 10,000 scans. */
(function () {
  "use strict";
  var QC = window.CohortQC;
  var D = window.COHORT_SCISEG_INDEX || { columns: [], rows: [] };
  var C = {};
  D.columns.forEach(function (c, i) { C[c] = i; });
  var COLS = [
    ["scan_id", "Scan"], ["site", "Site"], ["sub", "Subject"], ["ses", "Session"], ["orientation", "Orient."],
    ["status", "Status"], ["n_lesions", "Lesions"], ["total_volume_mm3", "Lesion vol. (mm³)"],
    ["max_axial_damage_ratio", "Damage ratio"], ["cord_dice", "Cord Dice"], ["lesion_dice", "Lesion Dice"],
    ["lesion_uncertainty", "Lesion uncert."], ["flags", "Flags"], ["rating", "Rating"]
  ];
  var DIGITS = { total_volume_mm3: 1, max_axial_damage_ratio: 3, cord_dice: 3, lesion_dice: 3, lesion_uncertainty: 3 };
  var ROWH = 26, OVERSCAN = 12;
  var grid = document.getElementById("grid");
  var body = document.getElementById("rows");
  var head = document.getElementById("head");
  var q = document.getElementById("q");
  var fSite = document.getElementById("f-site"), fStatus = document.getElementById("f-status");
  var fFlag = document.getElementById("f-flag"), fRating = document.getElementById("f-rating");
  var count = document.getElementById("count");
  var ratings = QC.loadRatings();
  var stateKey = QC.prefix + "index-state";
  var state = { q: "", site: "", status: "", flag: "", rating: "", sort: "", dir: 1, sel: 0, top: 0 };
  try { Object.assign(state, JSON.parse(sessionStorage.getItem(stateKey) || "{}")); } catch (e) { /* defaults */ }

  var rows = D.rows;
  var hay = rows.map(function (r) {
    return [r[C.scan_id], r[C.site], r[C.sub], r[C.ses], r[C.acq]].join(" ").toLowerCase();
  });
  var view = [];

  function distinct(col, split) {
    var seen = {};
    rows.forEach(function (r) {
      var v = r[C[col]];
      (split ? (v ? v.split(" ") : []) : [v]).forEach(function (x) { if (x !== null && x !== "") seen[x] = 1; });
    });
    return Object.keys(seen).sort();
  }

  function fill(select, values) {
    values.forEach(function (v) {
      var o = document.createElement("option");
      o.value = v; o.textContent = v;
      select.appendChild(o);
    });
  }

  function value(r, key) {
    if (key === "rating") { var x = ratings[r[C.scan_id]]; return x ? x.rating : ""; }
    return r[C[key]];
  }

  function text(r, key) {
    var v = value(r, key);
    if (v === null || v === undefined) return "";
    if (typeof v === "number" && key in DIGITS) return v.toFixed(DIGITS[key]);
    return String(v);
  }

  function compute() {
    var needle = state.q.trim().toLowerCase();
    var out = [];
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (needle && hay[i].indexOf(needle) < 0) continue;
      if (state.site && r[C.site] !== state.site) continue;
      if (state.status && r[C.status] !== state.status) continue;
      if (state.flag && (" " + r[C.flags] + " ").indexOf(" " + state.flag + " ") < 0) continue;
      if (state.rating) {
        var rt = value(r, "rating");
        if (state.rating === "unrated" ? rt : rt !== state.rating) continue;
      }
      out.push(i);
    }
    if (state.sort) {
      var key = state.sort, dir = state.dir;
      out.sort(function (a, b) {
        var x = value(rows[a], key), y = value(rows[b], key);
        var xe = x === null || x === undefined || x === "", ye = y === null || y === undefined || y === "";
        if (xe || ye) return xe === ye ? a - b : xe ? 1 : -1;  // empty cells last, either direction
        if (x < y) return -dir;
        if (x > y) return dir;
        return a - b;
      });
    }
    view = out;
    state.sel = Math.max(0, Math.min(state.sel, view.length - 1));
    count.textContent = view.length + " of " + rows.length + " scans";
  }

  function spacer(h) {
    var tr = document.createElement("tr");
    tr.className = "spacer";
    tr.style.height = h + "px";
    return tr;
  }

  function render() {
    var top = grid.scrollTop, height = grid.clientHeight || 600;
    var first = Math.max(0, Math.floor(top / ROWH) - OVERSCAN);
    var last = Math.min(view.length, Math.ceil((top + height) / ROWH) + OVERSCAN);
    var frag = document.createDocumentFragment();
    frag.appendChild(spacer(first * ROWH));
    for (var k = first; k < last; k++) {
      var r = rows[view[k]];
      var tr = document.createElement("tr");
      tr.dataset.k = k;
      if (k === state.sel) tr.className = "selected";
      for (var j = 0; j < COLS.length; j++) {
        var key = COLS[j][0], td = document.createElement("td");
        if (key === "scan_id") {
          var a = document.createElement("a");
          a.href = r[C.href];
          a.textContent = r[C.scan_id];
          td.appendChild(a);
        } else {
          td.textContent = text(r, key);
          if (key === "status" || key === "rating") td.className = key + "-" + text(r, key);
          if (key === "flags" && r[C.flags]) td.className = "flags";
        }
        tr.appendChild(td);
      }
      frag.appendChild(tr);
    }
    frag.appendChild(spacer((view.length - last) * ROWH));
    body.replaceChildren(frag);
  }

  function header() {
    COLS.forEach(function (c) {
      var th = document.createElement("th");
      th.textContent = c[1];
      th.dataset.key = c[0];
      th.setAttribute("role", "columnheader");
      th.tabIndex = 0;
      if (state.sort === c[0]) th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      head.appendChild(th);
    });
  }

  function persist() {
    state.top = grid.scrollTop;
    try { sessionStorage.setItem(stateKey, JSON.stringify(state)); } catch (e) { /* ignore */ }
  }

  function refresh() { compute(); render(); persist(); }

  function scrollToSel() {
    var y = state.sel * ROWH, h = grid.clientHeight - ROWH * 1.5;
    if (y < grid.scrollTop) grid.scrollTop = y;
    else if (y > grid.scrollTop + h) grid.scrollTop = y - h;
    render();
    persist();
  }

  function open(k) {
    if (k < 0 || k >= view.length) return;
    state.sel = k;
    persist();
    QC.saveOrder(view.map(function (i) { return rows[i][C.scan_id]; }),
                 view.map(function (i) { return rows[i][C.href]; }));
    window.location.href = rows[view[k]][C.href];
  }

  function rate(k, rating) {
    if (k < 0 || k >= view.length) return;
    var r = rows[view[k]];
    QC.setRating({ scan_id: r[C.scan_id], site: r[C.site], sub: r[C.sub], ses: r[C.ses] }, rating, null);
    ratings = QC.loadRatings();
    render();
  }

  fill(fSite, distinct("site"));
  fill(fStatus, distinct("status"));
  fill(fFlag, distinct("flags", true));
  q.value = state.q; fSite.value = state.site; fStatus.value = state.status;
  fFlag.value = state.flag; fRating.value = state.rating;
  header();

  q.addEventListener("input", function () { state.q = q.value; state.sel = 0; grid.scrollTop = 0; refresh(); });
  [[fSite, "site"], [fStatus, "status"], [fFlag, "flag"], [fRating, "rating"]].forEach(function (p) {
    p[0].addEventListener("change", function () { state[p[1]] = p[0].value; state.sel = 0; grid.scrollTop = 0; refresh(); });
  });
  head.addEventListener("click", function (ev) {
    var th = ev.target.closest("th");
    if (!th) return;
    var key = th.dataset.key;
    state.dir = state.sort === key ? -state.dir : 1;
    state.sort = key;
    head.querySelectorAll("th").forEach(function (h) {
      if (h.dataset.key === key) h.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
      else h.removeAttribute("aria-sort");
    });
    refresh();
  });
  var pending = false;
  grid.addEventListener("scroll", function () {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; render(); });
  });
  body.addEventListener("click", function (ev) {
    var tr = ev.target.closest("tr[data-k]");
    if (!tr) return;
    var k = Number(tr.dataset.k);
    if (ev.target.closest("a")) { ev.preventDefault(); open(k); return; }
    state.sel = k; render(); persist();
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.target === q && ev.key === "Escape") { q.blur(); return; }
    if (QC.typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var k = ev.key;
    if (k === "j" || k === "ArrowDown") { state.sel = Math.min(view.length - 1, state.sel + 1); scrollToSel(); }
    else if (k === "k" || k === "ArrowUp") { state.sel = Math.max(0, state.sel - 1); scrollToSel(); }
    else if (k === "Enter" || k === "o") open(state.sel);
    else if (k === "/") q.focus();
    else if (k === "p") rate(state.sel, "pass");
    else if (k === "f") rate(state.sel, "fail");
    else if (k === "a") rate(state.sel, "artifact");
    else return;
    ev.preventDefault();
  });
  document.getElementById("export-csv").addEventListener("click", function () { QC.exportRatings("csv"); });
  document.getElementById("export-yaml").addEventListener("click", function () { QC.exportRatings("yaml"); });
  window.addEventListener("pageshow", function (ev) {  // back from a scan page: ratings may have changed
    if (ev.persisted) { ratings = QC.loadRatings(); refresh(); }
  });

  compute();
  grid.scrollTop = state.top || 0;
  render();
  window.COHORT_SCISEG_READY = performance.now();
  document.body.dataset.ready = "1";
})();
