// samplerlab viewer: sortable tables, keyboard shortcuts, and the static export's pager.
// No dependencies and nothing fetched: the pages work offline.
"use strict";

(function () {
  function sortValue(cell, numeric) {
    const raw = cell.getAttribute("data-sort");
    const text = raw === null ? cell.textContent.trim() : raw;
    if (!numeric) return text.toLowerCase();
    const x = parseFloat(text);
    return Number.isNaN(x) ? null : x;
  }

  // Click a column heading of a table.sortable: ascending, then descending. Empty values
  // (missing metrics) always sort last.
  function makeSortable(table) {
    const heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, column) {
      th.tabIndex = 0;
      const sort = function () {
        const numeric = th.getAttribute("data-type") === "number";
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        rows.sort(function (r1, r2) {
          const a = sortValue(r1.cells[column], numeric);
          const b = sortValue(r2.cells[column], numeric);
          if (a === null || a === "") return (b === null || b === "") ? 0 : 1;
          if (b === null || b === "") return -1;
          const order = a < b ? -1 : a > b ? 1 : 0;
          return ascending ? order : -order;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") sort(); });
    });
  }

  // An element with data-key="a 1 ArrowLeft" is clicked when one of those keys is pressed
  // (not while typing in a field, and not with a modifier).
  function keyboard() {
    document.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const target = e.target;
      if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
      const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
      const elements = document.querySelectorAll("[data-key]");
      for (const el of elements) {
        if (el.getAttribute("data-key").split(" ").indexOf(key) >= 0 && !el.disabled) {
          e.preventDefault();
          el.click();
          return;
        }
      }
    });
  }

  // Static export: one prompt at a time, with the same filters as the server's page.
  function exportPager(root) {
    const pages = Array.from(root.querySelectorAll(".prompt-page"));
    const position = root.querySelector("#export-position");
    const search = root.querySelector("#export-search");
    const stop = root.querySelector("#export-stop");
    const boxes = Array.from(root.querySelectorAll("input[name=export-cell]"));
    let shown = pages;
    let current = 0;

    function cellVisible(id) {
      return boxes.some(function (b) { return b.value === id && b.checked; });
    }
    function applyCells() {
      root.querySelectorAll("[data-cell]").forEach(function (el) {
        el.hidden = !cellVisible(el.getAttribute("data-cell"));
      });
      root.querySelectorAll("td.card[data-stop]").forEach(function (el) {
        if (stop.value && el.getAttribute("data-stop") !== stop.value) el.hidden = true;
      });
    }
    function matches(page) {
      const cards = Array.from(page.querySelectorAll("td.card[data-stop]")).filter(function (c) {
        return cellVisible(c.getAttribute("data-cell")) && (!stop.value || c.getAttribute("data-stop") === stop.value);
      });
      if (!cards.length) return false;
      const needle = search.value.trim().toLowerCase();
      if (!needle) return true;
      const prompt = page.querySelector(".prompt-text").textContent.toLowerCase();
      const reference = page.querySelector("td.reference");
      return prompt.indexOf(needle) >= 0 ||
        (reference !== null && reference.textContent.toLowerCase().indexOf(needle) >= 0) ||
        cards.some(function (c) { return c.querySelector(".text").textContent.toLowerCase().indexOf(needle) >= 0; });
    }
    function show() {
      pages.forEach(function (p) { p.hidden = true; });
      if (!shown.length) { position.textContent = "no prompt matches"; return; }
      current = Math.max(0, Math.min(current, shown.length - 1));
      shown[current].hidden = false;
      position.textContent = "prompt " + (current + 1) + " of " + shown.length;
    }
    function filter() {
      applyCells();
      shown = pages.filter(matches);
      current = 0;
      show();
    }
    root.querySelector("#export-prev").addEventListener("click", function () { current -= 1; show(); });
    root.querySelector("#export-next").addEventListener("click", function () { current += 1; show(); });
    [search, stop].concat(boxes).forEach(function (el) { el.addEventListener("input", filter); });
    filter();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable").forEach(makeSortable);
    keyboard();
    const pager = document.getElementById("export-samples");
    if (pager) exportPager(pager);
  });
})();
