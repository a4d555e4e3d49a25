/* cohort-sciseg QC report: ratings kept in the browser (localStorage), exported as CSV or YAML.
   Data from the run is only ever put into the page with textContent / attributes, never as HTML. */
(function () {
  "use strict";
  var meta = window.COHORT_SCISEG_META || { report: "unknown" };
  var prefix = "cohort-sciseg:" + meta.report + ":";
  var KEY = prefix + "ratings";
  var RATINGS = ["pass", "fail", "artifact"];

  function loadRatings() {
    try {
      var all = JSON.parse(window.localStorage.getItem(KEY) || "{}");
      return all && typeof all === "object" ? all : {};
    } catch (e) {
      return {};
    }
  }

  function saveRatings(all) {
    window.localStorage.setItem(KEY, JSON.stringify(all));
  }

  /* scan: {scan_id, site, sub, ses}; rating: "pass" | "fail" | "artifact" | "" */
  function setRating(scan, rating, comment) {
    var all = loadRatings();
    var old = all[scan.scan_id] || {};
    if (rating === undefined || rating === null) rating = old.rating || "";
    if (comment === undefined || comment === null) comment = old.comment || "";
    if (!rating && !comment) {
      delete all[scan.scan_id];
    } else {
      all[scan.scan_id] = {
        site: scan.site, sub: scan.sub, ses: scan.ses || "",
        rating: rating, comment: comment, rated_at: new Date().toISOString()
      };
    }
    saveRatings(all);
    return all[scan.scan_id] || null;
  }

  function exported() {
    var all = loadRatings();
    return Object.keys(all).sort().filter(function (id) {
      return RATINGS.indexOf(all[id].rating) >= 0;
    }).map(function (id) {
      var r = all[id];
      return { scan_id: id, site: r.site || "", sub: r.sub || "", ses: r.ses || "",
               rating: r.rating, comment: r.comment || "", rated_at: r.rated_at || "" };
    });
  }

  var FIELDS = ["scan_id", "site", "sub", "ses", "rating", "comment", "rated_at"];

  function csvField(v) {
    v = String(v === undefined || v === null ? "" : v);
    return /[",\r\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
  }

  function toCSV(rows) {
    var lines = [FIELDS.join(",")];
    rows.forEach(function (r) {
      lines.push(FIELDS.map(function (f) { return csvField(r[f]); }).join(","));
    });
    return lines.join("\r\n") + "\r\n";
  }

  /* JSON strings are valid YAML double-quoted scalars */
  function toYAML(rows) {
    var q = JSON.stringify;
    var out = ["report: " + q(String(meta.report)), "exported_at: " + q(new Date().toISOString()), "ratings:"];
    if (!rows.length) out[2] = "ratings: []";
    rows.forEach(function (r) {
      FIELDS.forEach(function (f, i) {
        out.push((i === 0 ? "  - " : "    ") + f + ": " + q(String(r[f])));
      });
    });
    return out.join("\n") + "\n";
  }

  function download(name, text, type) {
    var blob = new Blob([text], { type: type });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
  }

  function exportRatings(kind) {
    var rows = exported();
    var stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "");
    if (kind === "yaml") download("ratings-" + stamp + ".yaml", toYAML(rows), "application/x-yaml");
    else download("ratings-" + stamp + ".csv", toCSV(rows), "text/csv");
    return rows.length;
  }

  /* the scan order the reviewer last looked at (index filters and sort), for prev/next */
  function saveOrder(ids, hrefs) {
    try {
      window.sessionStorage.setItem(prefix + "order", JSON.stringify({ ids: ids, hrefs: hrefs }));
    } catch (e) { /* full or disabled: scan pages fall back to the index order */ }
  }

  function loadOrder() {
    try {
      var o = JSON.parse(window.sessionStorage.getItem(prefix + "order") || "null");
      return o && o.ids && o.hrefs ? o : null;
    } catch (e) {
      return null;
    }
  }

  function typing(ev) {
    var t = ev.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }

  window.CohortQC = {
    meta: meta, prefix: prefix, RATINGS: RATINGS, loadRatings: loadRatings, setRating: setRating,
    exportRatings: exportRatings, toCSV: toCSV, toYAML: toYAML, saveOrder: saveOrder, loadOrder: loadOrder,
    typing: typing
  };
})();
