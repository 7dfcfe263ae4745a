// The report's one script (inline; the page's Content-Security-Policy lets only this text run,
// by its sha256). Sortable tables and the enlarged-image view. Text from the results is read
// and written with textContent only, never parsed as markup.
(function () {
  "use strict";

  // --- sortable tables: a click on a column's button sorts by it, again reverses -------------
  // A cell sorts by its data-sort attribute when it has one (a number; empty = no value, last
  // in either direction), else by its text. Ties keep the page's own order.
  function sortKey(cell, numeric) {
    if (numeric) {
      var raw = cell.getAttribute("data-sort");
      return raw === null || raw === "" ? null : parseFloat(raw);
    }
    return cell.textContent.trim().toLowerCase();
  }

  function sortTable(table, index, button) {
    var head = button.closest("th");
    var ascending = head.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.removeAttribute("aria-sort");
    });
    head.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = rows.some(function (row) {
      return row.cells[index] && row.cells[index].hasAttribute("data-sort");
    });
    rows.sort(function (a, b) {
      var x = sortKey(a.cells[index], numeric);
      var y = sortKey(b.cells[index], numeric);
      if (x === null || y === null) {
        if (x === y) return a.dataset.order - b.dataset.order;
        return x === null ? 1 : -1;
      }
      var c = x < y ? -1 : x > y ? 1 : 0;
      return (ascending ? c : -c) || a.dataset.order - b.dataset.order;
    });
    rows.forEach(function (row) {
      body.appendChild(row);
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row, i) {
      row.dataset.order = i;
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      var button = th.querySelector("button.sort");
      if (button) {
        button.addEventListener("click", function () {
          sortTable(table, index, button);
        });
      }
    });
  });

  // --- the enlarged view: click a thumbnail; arrows move across checkpoints (left/right) and
  // rows (up/down) of its grid, Escape closes ---------------------------------------------------
  var box = document.getElementById("lightbox");
  var image = document.getElementById("lightbox-image");
  var caption = document.getElementById("lightbox-caption");
  var current = null;

  function show(button) {
    current = button;
    // the grid's cells carry a larger image; a section's samples show their thumbnail larger
    image.src = button.getAttribute("data-full") || button.querySelector("img").src;
    image.alt = button.querySelector("img").alt;
    caption.textContent = button.getAttribute("data-caption");
    box.hidden = false;
    document.getElementById("lightbox-close").focus();
  }

  function close() {
    box.hidden = true;
    image.removeAttribute("src");
    if (current) current.focus();
    current = null;
  }

  function neighbour(dRow, dCol) {
    if (!current) return;
    var group = current.dataset.group;
    var row = Number(current.dataset.row);
    var col = Number(current.dataset.col);
    var same = Array.prototype.filter.call(
      document.querySelectorAll("button.zoom"),
      function (b) {
        if (b.dataset.group !== group) return false;
        return dCol ? Number(b.dataset.row) === row : Number(b.dataset.col) === col;
      }
    );
    var axis = dCol ? "col" : "row";
    same.sort(function (a, b) {
      return Number(a.dataset[axis]) - Number(b.dataset[axis]);
    });
    var at = same.indexOf(current) + (dCol || dRow);
    if (at >= 0 && at < same.length) show(same[at]);
  }

  Array.prototype.forEach.call(document.querySelectorAll("button.zoom"), function (button) {
    button.addEventListener("click", function () {
      show(button);
    });
  });
  document.getElementById("lightbox-close").addEventListener("click", close);
  document.getElementById("lightbox-prev").addEventListener("click", function () {
    neighbour(0, -1);
  });
  document.getElementById("lightbox-next").addEventListener("click", function () {
    neighbour(0, 1);
  });
  box.addEventListener("click", function (event) {
    if (event.target === box) close();
  });
  document.addEventListener("keydown", function (event) {
    if (box.hidden) return;
    var moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    if (event.key === "Escape") {
      close();
    } else if (moves[event.key]) {
      neighbour(moves[event.key][0], moves[event.key][1]);
    } else {
      return;
    }
    event.preventDefault();
  });
})();
