/* report.html: images from the page's pool, sortable tables, series and panel toggles, row filter. */
(function () {
  "use strict";
  var each = function (list, action) { Array.prototype.forEach.call(list, action); };

  var pool = JSON.parse(document.getElementById("rp-images").textContent);
  each(document.querySelectorAll("img[data-image]"), function (img) {
    var uri = pool[img.getAttribute("data-image")];
    if (uri) { img.src = uri; }
  });

  function sortKey(cell, numeric) {
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
    if (!numeric) { return raw === "" ? null : raw; }
    var number = parseFloat(raw);
    return isNaN(number) ? null : number;
  }

  function compare(a, b, numeric) {
    if (a === null || b === null) { return (a === null) - (b === null); }
    if (numeric) { return a - b; }
    return a.localeCompare(b, undefined, { numeric: true });
  }

  function sortTable(table, column) {
    var header = table.tHead.rows[0].cells[column];
    var numeric = header.getAttribute("data-type") === "number";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    each(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, index) {
      return { row: row, index: index, key: sortKey(row.cells[column], numeric) };
    });
    rows.sort(function (a, b) {
      if (a.key === null || b.key === null) { return compare(a.key, b.key, numeric) || a.index - b.index; }
      var order = compare(a.key, b.key, numeric);
      return (ascending ? order : -order) || a.index - b.index;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
  }

  each(document.querySelectorAll("table.sortable"), function (table) {
    each(table.tHead.rows[0].cells, function (cell, column) {
      var button = cell.querySelector("button");
      if (button) { button.addEventListener("click", function () { sortTable(table, column); }); }
    });
  });

  each(document.querySelectorAll("input[data-series-toggle]"), function (input) {
    input.addEventListener("change", function () {
      var group = document.getElementById(input.getAttribute("data-group"));
      var key = input.getAttribute("data-series-toggle");
      each(group.querySelectorAll("[data-series]"), function (element) {
        if (element.getAttribute("data-series") === key) { element.classList.toggle("hidden", !input.checked); }
      });
    });
  });

  each(document.querySelectorAll("input[data-panel-toggle]"), function (input) {
    input.addEventListener("change", function () {
      var group = document.getElementById(input.getAttribute("data-group"));
      var title = input.getAttribute("data-panel-toggle");
      each(group.querySelectorAll("[data-panel]"), function (panel) {
        if (panel.getAttribute("data-panel") === title) { panel.hidden = !input.checked; }
      });
    });
  });

  each(document.querySelectorAll("input[data-filter]"), function (input) {
    var table = document.getElementById(input.getAttribute("data-filter"));
    var count = document.getElementById(input.getAttribute("data-count"));
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      each(table.tBodies[0].rows, function (row) {
        var text = row.textContent.toLowerCase();
        row.hidden = !words.every(function (word) { return text.indexOf(word) >= 0; });
        shown += row.hidden ? 0 : 1;
      });
      if (count) { count.textContent = shown + " of " + table.tBodies[0].rows.length + " rows"; }
    });
  });
})();
