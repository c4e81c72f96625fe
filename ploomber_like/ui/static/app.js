// ploomber_like UI: the runs page (table, parallel coordinates, scatter) and the metric charts
// of run pages. Every text from the database goes in with textContent: never parsed as HTML.
(function () {
  "use strict";

  var configElement = document.getElementById("tracker-config");
  var config = configElement ? JSON.parse(configElement.textContent) : {};
  var POLL_MS = 2000;
  var STATUS_COLOURS = {
    ok: "#2f9e44", failed: "#e03131", timeout: "#e8590c", crashed: "#9c36b5",
    interrupted: "#868e96", running: "#1c7ed6", pruned: "#f08c00"
  };
  var PLOT_FONT = { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 11 };
  // Runs that did not end ok are drawn in this grey under the others, whatever their colour value.
  var MUTED = "#ced4da";
  var VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
  // Where None and missing values sit on a numeric axis: this share of its range below the lowest
  // number, with a tick of their own.
  var MISSING_GAP = 0.15;
  // Rows of the table drawn at once; the rest of its page just after (see renderTable). The
  // table's box shows about 25 (70% of the window's height).
  var ROWS_IN_SIGHT = 30;

  var state = {
    payload: null,
    sortKey: null,
    sortAsc: false,
    chosen: new Map(),     // column key -> shown (true) or hidden (false), as the user ticked
    brush: {},             // parcoords constraint ranges by column key
    selected: new Set(),   // uuids ticked for compare
    textFilter: "",        // the report's filter (no SQL without a server)
    groupMeans: false,     // both charts draw each replicate group's mean ± std
    axes: {},              // axis positions by column key, for the current payload
    lines: null,           // the parcoords' lines: per line, the indices in chartRuns() of its runs
    lineOf: new Map(),     // uuid -> index of its line
    lineAxes: {},          // the lines' positions and texts by column key
    lineOrder: [],         // line indices in the order the parcoords draws them
    position: new Map(),   // uuid -> index in payload.runs
    colorKey: null,
    xKey: null,
    yKey: null,
    offset: 0,             // the first row of the table's page, when the server pages it
    after: null,           // the run that page is read after (null: the first page)
    pages: [],             // the offset and after of each page before it, for Previous
    requests: 0,           // requests to /api/runs made so far
    latest: 0,             // the number of the latest one the user asked for
    pending: 0,            // how many of those are unanswered
    version: null          // the database's version the payload was read at
  };

  // Runs fn once plotly.js is there. It is 3.5 MB: the server's pages fetch it only when they
  // draw a chart, so parsing it never holds the table or a run page back (the report inlines it).
  function whenPlotly(fn) {
    if (window.Plotly) { fn(); return; }
    var script = document.getElementById("plotly-script");
    if (!script) {
      script = el("script", { src: "/static/plotly.min.js", id: "plotly-script" });
      document.head.appendChild(script);
    }
    script.addEventListener("load", fn);
  }

  function el(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { node.setAttribute(name, attributes[name]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // --- data ----------------------------------------------------------------------------------

  function columnsOf(kind) {
    return state.payload.columns.filter(function (c) { return c.kind === kind; });
  }

  function numericColumns() {
    return state.payload.columns.filter(function (c) { return c.numeric && c.kind !== "run"; });
  }

  function cell(run, key) { return run.cells[key] || { v: null, t: "" }; }

  // Whether the payload holds every run the filter selects: then the page sorts and brushes by
  // itself. Otherwise the server sorts, brushes and pages the table, and the charts draw its
  // sample of the runs.
  function complete() { return config.mode === "report" || state.payload.complete !== false; }

  // Until a paged table's sample has come, its page stands for the runs.
  function chartRuns() {
    return complete() ? state.payload.runs : state.payload.sample || state.payload.runs;
  }

  function chartColumns() {
    // Numbers, and text parameters with a few distinct values (as categorical axes); an axis
    // where every run has the same value says nothing and cannot be brushed.
    var single = chartRuns().length < 2;
    return state.payload.columns.filter(function (c) {
      if (c.kind === "run" || c.plot) return false;
      if (!c.numeric && c.kind !== "parameter") return false;
      var distinct = new Set(chartRuns().map(function (r) { return cell(r, c.key).t; }));
      if (c.numeric) return single || distinct.size > 1;
      return distinct.size > 1 && distinct.size <= 20;
    });
  }

  function niceTicks(low, high, count) {
    if (low === high) return [low];
    var step = Math.pow(10, Math.floor(Math.log10((high - low) / count)));
    var error = (high - low) / count / step;
    if (error >= 7.5) step *= 10; else if (error >= 3.5) step *= 5; else if (error >= 1.5) step *= 2;
    var ticks = [];
    for (var t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) {
      ticks.push(Number(t.toPrecision(12)));
    }
    return ticks;
  }

  function missingText(text) { return text === "" ? state.payload.missing : text; }

  // One position per run on a column's axis, in the order of state.payload.runs: numbers as they
  // are, None and missing values on a tick of their own below them; text as categories (None
  // first, at the bottom). Every run gets a position, so every run gets a line.
  function axisValues(column) {
    var runs = chartRuns();
    if (column.numeric) {
      var numbers = runs.map(function (r) {
        var v = cell(r, column.key).v;
        return typeof v === "number" && isFinite(v) ? v : null;
      });
      var present = numbers.filter(function (n) { return n !== null; });
      if (present.length === numbers.length) return { values: numbers };
      var low = present.length ? Math.min.apply(null, present) : 0;
      var high = present.length ? Math.max.apply(null, present) : 0;
      var slot = low - ((high - low) || Math.abs(high) || 1) * MISSING_GAP;
      var ticks = present.length ? niceTicks(low, high, 5) : [];
      return {
        values: numbers.map(function (n) { return n === null ? slot : n; }),
        tickvals: [slot].concat(ticks),
        ticktext: [state.payload.missing].concat(ticks.map(String)),
        range: [slot, high]
      };
    }
    var texts = runs.map(function (r) { return missingText(cell(r, column.key).t); });
    var labels = Array.from(new Set(texts)).sort(function (a, b) {
      if (a === state.payload.missing) return -1;
      if (b === state.payload.missing) return 1;
      return a.localeCompare(b, undefined, { numeric: true });
    });
    return {
      values: texts.map(function (t) { return labels.indexOf(t); }),
      tickvals: labels.map(function (_, i) { return i; }),
      ticktext: labels
    };
  }

  function axisOf(key) {
    if (!state.axes[key]) {
      var column = state.payload.columns.find(function (c) { return c.key === key; });
      state.axes[key] = column ? axisValues(column) : null;
    }
    return state.axes[key];
  }

  function isNumber(v) { return typeof v === "number" && isFinite(v); }

  function rounded(x) { return String(Number(x.toPrecision(4))); }

  // The parallel coordinates draw a line per run or, with group means, per replicate group (a
  // run that is no replicate is a group of one), over the runs the charts draw.
  function lines() {
    if (!state.lines) {
      var runs = chartRuns(), members = new Map();
      runs.forEach(function (run, i) {
        var key = state.groupMeans ? run.group : run.uuid;
        if (!members.has(key)) members.set(key, []);
        members.get(key).push(i);
      });
      state.lines = Array.from(members.values());
      state.lineOf = new Map();
      state.lines.forEach(function (line, j) {
        line.forEach(function (i) { state.lineOf.set(runs[i].uuid, j); });
      });
      state.lineAxes = {};
    }
    return state.lines;
  }

  // Each line's position on a column's axis and its text, `mean ± std (n=3)`: the mean of its
  // runs' numbers (None and missing values left out, on the missing tick when no run has one);
  // on a text axis its category (a group's replicates share their parameters but the seed).
  function lineAxis(key) {
    var axis = axisOf(key);
    if (!axis) return null;
    var runs = chartRuns(), drawn = lines();
    if (!state.lineAxes[key]) {
      var numeric = state.payload.columns.find(function (c) { return c.key === key; }).numeric;
      var line = { values: [], texts: [] };
      drawn.forEach(function (members) {
        var numbers = !numeric ? [] :
          members.map(function (i) { return cell(runs[i], key).v; }).filter(isNumber);
        if (!numbers.length) {
          line.values.push(axis.values[members[0]]);
          line.texts.push(missingText(cell(runs[members[0]], key).t));
          return;
        }
        var spread = meanAndStd(numbers);
        line.values.push(spread[0]);
        line.texts.push(rounded(spread[0]) +
                        (numbers.length > 1 ? " ± " + rounded(spread[1]) : "") +
                        " (n=" + numbers.length + ")");
      });
      state.lineAxes[key] = line;
    }
    return state.lineAxes[key];
  }

  // A run is inside the brushed ranges when its line is: with group means, whole groups are.
  function passesBrush(run) {
    return Object.keys(state.brush).every(function (key) {
      var ranges = state.brush[key];
      if (!ranges || !ranges.length) return true;
      if (!Array.isArray(ranges[0])) ranges = [ranges];
      var axis = lineAxis(key);
      if (!axis) return true;
      var value = axis.values[state.lineOf.get(run.uuid)];
      return ranges.some(function (r) { return value >= r[0] && value <= r[1]; });
    });
  }

  function passesText(run) {
    if (!state.textFilter) return true;
    var needle = state.textFilter.toLowerCase();
    return Object.keys(run.cells).some(function (key) {
      return String(run.cells[key].t).toLowerCase().indexOf(needle) !== -1;
    });
  }

  function visibleRuns() {
    if (!complete()) return state.payload.runs;
    var runs = state.payload.runs.filter(function (r) { return passesBrush(r) && passesText(r); });
    if (state.sortKey) {
      var key = state.sortKey, sign = state.sortAsc ? 1 : -1;
      runs = runs.slice().sort(function (a, b) {
        var x = cell(a, key).v, y = cell(b, key).v;
        if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1;
        if (y === null || y === undefined) return -1;
        if (typeof x === "number" && typeof y === "number") return sign * (x - y);
        return sign * String(x).localeCompare(String(y), undefined, { numeric: true });
      });
    }
    return runs;
  }

  // --- table ---------------------------------------------------------------------------------

  function isHidden(column) {
    if (state.chosen.has(column.key)) return !state.chosen.get(column.key);
    // Plots are thumbnails nobody reads in a row; a column equal in every run is named once,
    // above the table, so the room goes to what differs. Both follow the runs as they come.
    return Boolean(column.plot || column.constant);
  }

  function renderConstants() {
    var line = document.getElementById("constant-columns");
    if (!line) return;
    var first = chartRuns()[0];
    var same = state.payload.columns.filter(function (c) {
      return c.constant && isHidden(c) && !c.plot;
    });
    line.textContent = "";
    line.hidden = !same.length || !first;
    if (line.hidden) return;
    line.appendChild(el("span", { "class": "hint" }, "same in every run: "));
    same.forEach(function (column, i) {
      if (i) line.appendChild(document.createTextNode(", "));
      var pair = el("span", { "class": "pair", "data-key": column.key });
      pair.appendChild(el("span", { "class": "kind-" + column.kind }, column.key));
      pair.appendChild(document.createTextNode(" = " + cell(first, column.key).t));
      line.appendChild(pair);
    });
  }

  function renderColumnsMenu() {
    var panel = document.getElementById("columns-panel");
    panel.textContent = "";
    [["run", "run"], ["parameter", "parameters"], ["value", "values"]].forEach(function (group) {
      var columns = columnsOf(group[0]);
      if (!columns.length) return;
      panel.appendChild(el("div", { "class": "group" }, group[1]));
      columns.forEach(function (column) {
        if (column.key === "uuid") return;
        var label = el("label");
        var box = el("input", { type: "checkbox", "data-key": column.key });
        box.checked = !isHidden(column);
        box.addEventListener("change", function () {
          state.chosen.set(column.key, box.checked);
          renderTable();
        });
        label.appendChild(box);
        label.appendChild(document.createTextNode(column.key));
        panel.appendChild(label);
      });
    });
  }

  function renderTable() {
    var table = document.getElementById("runs-table");
    renderConstants();
    // The column the runs are sorted by stays in sight, even one hidden by default.
    var columns = state.payload.columns.filter(function (c) {
      return !isHidden(c) || c.key === state.sortKey;
    });
    var head = table.tHead, body = table.tBodies[0];
    head.textContent = "";
    body.textContent = "";
    var row = el("tr");
    row.appendChild(el("th", { "class": "select" }, ""));
    columns.forEach(function (column) {
      var th = el("th", { "class": "kind-" + column.kind, "data-key": column.key, title: column.kind }, column.key);
      if (state.sortKey === column.key) th.classList.add(state.sortAsc ? "sorted-asc" : "sorted-desc");
      th.addEventListener("click", function () {
        if (state.sortKey === column.key) state.sortAsc = !state.sortAsc;
        else { state.sortKey = column.key; state.sortAsc = !column.numeric; }
        if (complete()) renderTable(); else reload(0, true);
      });
      row.appendChild(th);
    });
    head.appendChild(row);

    var runs = visibleRuns();
    // The rows in sight first, painted in the next frame; the rest of the page's rows once the
    // page is idle after that frame (laying out 100 rows of a wide table is most of a sort's time
    // in the browser), unless the table is drawn again meanwhile. Until then the table says it is
    // still filling in.
    var drawn = state.tableDraws = (state.tableDraws || 0) + 1;
    var addRow = function (run) {
      var tr = el("tr", { "data-uuid": run.uuid });
      if (state.selected.has(run.uuid)) tr.classList.add("selected");
      var tick = el("td");
      var box = el("input", { type: "checkbox", title: "select to compare" });
      box.checked = state.selected.has(run.uuid);
      box.addEventListener("change", function () {
        if (box.checked) state.selected.add(run.uuid); else state.selected.delete(run.uuid);
        tr.classList.toggle("selected", box.checked);
        updateCompareButton();
      });
      tick.appendChild(box);
      tr.appendChild(tick);
      columns.forEach(function (column) {
        var c = cell(run, column.key);
        var td = el("td");
        if (column.key === "uuid") {
          // A report's runs beyond its run pages have none to link to.
          td.appendChild(el(run.href ? "a" : "span",
                            run.href ? { href: run.href, "class": "uuid", title: run.uuid } :
                                       { "class": "uuid", title: run.uuid }, run.short));
        } else if (column.key === "status") {
          td.appendChild(el("span", { "class": "status status-" + (run.status || "unknown") }, c.t));
        } else if (column.key === "tags") {
          (c.t ? c.t.split(", ") : []).forEach(function (tag) { td.appendChild(el("span", { "class": "tag" }, tag)); });
        } else if (column.plot && c.s && config.mode === "live") {
          td.appendChild(el("img", { "class": "thumb", src: config.blob + c.s, alt: column.key, loading: "lazy" }));
        } else {
          td.textContent = c.t;
          if (column.numeric) td.classList.add("num");
          if (c.v === null && c.t === state.payload.missing) td.classList.add("missing");
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    };
    runs.slice(0, ROWS_IN_SIGHT).forEach(addRow);
    if (runs.length > ROWS_IN_SIGHT) {
      table.dataset.filling = "1";
      window.requestAnimationFrame(function () {
        whenIdle(function () {
          if (drawn !== state.tableDraws) return;
          runs.slice(ROWS_IN_SIGHT).forEach(addRow);
          delete table.dataset.filling;
        });
      });
    } else {
      delete table.dataset.filling;
    }
    document.getElementById("runs-empty").hidden = runs.length > 0;
    renderPager(runs.length);
  }

  function renderPager(shown) {
    var pager = document.getElementById("pager");
    var count = document.getElementById("run-count");
    if (complete()) {
      // A report holds the most recent runs of a larger database: say of how many.
      var total = Math.max(state.payload.runs.length, state.payload.total || 0);
      count.textContent = shown === total ? total + " runs" : shown + " of " + total + " runs";
      if (pager) pager.hidden = true;
      return;
    }
    count.textContent = state.payload.total + " runs";
    if (!pager) return;
    pager.hidden = false;
    var first = state.payload.offset;
    document.getElementById("pager-text").textContent = shown ?
      (first + 1) + "\u2013" + (first + shown) + " of " + state.payload.total : "";
    document.getElementById("pager-previous").disabled = first === 0;
    document.getElementById("pager-next").disabled = first + shown >= state.payload.total;
  }

  function updateCompareButton() {
    var button = document.getElementById("compare-button");
    var n = state.selected.size;
    var enabled = n >= 2 && n <= 4 && config.mode === "live";
    button.classList.toggle("disabled", !enabled);
    button.textContent = n ? "Compare " + n + " selected" : "Compare selected";
    if (enabled) {
      var query = Array.from(state.selected).map(function (u) { return "uuid=" + encodeURIComponent(u); });
      button.setAttribute("href", config.compare + "?" + query.join("&"));
    } else {
      button.setAttribute("href", config.mode === "report" && config.compare ? config.compare : "#");
      if (config.mode === "report" && config.compare) button.classList.remove("disabled");
    }
  }

  // --- charts --------------------------------------------------------------------------------

  function fillSelect(select, columns, chosen) {
    select.textContent = "";
    columns.forEach(function (column) {
      var option = el("option", { value: column.key }, column.key);
      if (column.key === chosen) option.selected = true;
      select.appendChild(option);
    });
  }

  function chooseDefaults() {
    var numeric = numericColumns();
    var values = numeric.filter(function (c) { return c.kind === "value"; });
    var parameters = numeric.filter(function (c) { return c.kind === "parameter"; });
    var has = function (key) { return key && numeric.some(function (c) { return c.key === key; }); };
    // The last value every ok run shows (f1 after accuracy...), so few lines are left grey.
    var complete = values.filter(function (c) {
      return chartRuns().every(function (r) {
        return r.status !== "ok" || typeof cell(r, c.key).v === "number";
      });
    });
    var colour = complete[complete.length - 1] || values[values.length - 1] || numeric[0] || {};
    if (!has(state.colorKey)) state.colorKey = colour.key || null;
    if (!has(state.yKey)) state.yKey = state.colorKey;
    if (!has(state.xKey)) state.xKey = (parameters[0] || numeric[0] || {}).key || null;
  }

  function renderChartNote() {
    var note = document.getElementById("chart-note");
    if (!note) return;
    var drawn = chartRuns().length;
    note.textContent = !complete() && state.payload.sampled ?
      "a random sample of " + drawn + " of the runs: brushing filters all of them" +
      (state.groupMeans ? "; group means of the runs drawn" : "") : "";
  }

  function renderParcoords() {
    var host = document.getElementById("parcoords");
    var columns = chartColumns();
    renderChartNote();
    if (!window.Plotly) return;  // not fetched yet: the charts are drawn once it is
    if (!columns.length || !chartRuns().length) {
      host.textContent = "";
      host.appendChild(el("div", { "class": "empty" }, "no numeric parameters or values yet"));
      return;
    }
    // Lines of runs that did not end ok first: drawn first, under the others.
    var runs = chartRuns();
    var muted = lines().map(function (members) {
      return members.every(function (i) { return runs[i].status !== "ok"; });
    });
    var order = state.lineOrder = muted.map(function (_, j) { return j; });
    order.sort(function (a, b) { return (muted[b] - muted[a]) || (a - b); });
    var pick = function (values) { return order.map(function (j) { return values[j]; }); };
    var dimensions = columns.map(function (column) {
      var axis = axisOf(column.key);
      var dimension = { label: column.key, values: pick(lineAxis(column.key).values) };
      if (axis.tickvals) { dimension.tickvals = axis.tickvals; dimension.ticktext = axis.ticktext; }
      if (axis.range) dimension.range = axis.range;
      if (state.brush[column.key]) dimension.constraintrange = state.brush[column.key];
      return dimension;
    });
    var trace = { type: "parcoords", dimensions: dimensions, line: lineColours(order, muted),
                  labelfont: { size: 11 }, tickfont: { size: 10 }, rangefont: { size: 9 } };
    var layout = { margin: { l: 50, r: 70, t: 40, b: 20 }, font: PLOT_FONT, paper_bgcolor: "rgba(0,0,0,0)" };
    Plotly.react(host, [trace], layout, { displaylogo: false, responsive: true });
    if (!host.dataset.listening) {
      host.dataset.listening = "1";
      host.addEventListener("mousedown", function (event) {
        if (event.target.closest && event.target.closest(".axis-brush")) deferLineRendering(host);
      }, true);
      host.on("plotly_restyle", function () {
        var next = {};
        (host.data[0].dimensions || []).forEach(function (d) {
          if (d.constraintrange && d.constraintrange.length) next[d.label] = d.constraintrange;
        });
        state.brush = next;
        if (!complete()) { reload(0, true); return; }
        renderTable();
        renderScatter();
      });
      host.on("plotly_hover", showLineTip);
      var hideTip = function () { document.getElementById("parcoords-tip").hidden = true; };
      host.on("plotly_unhover", hideTip);
      // Plotly says nothing when the pointer leaves the chart straight from a line.
      host.addEventListener("mouseleave", hideTip);
    }
  }

  // While an axis is brushed, plotly's parcoords redraws every line at each move of the pointer
  // (in WebGL: 0.1-0.5 s a move where Chromium draws it in software), and again when the brush is
  // let go, before it says the range changed. Until the table shows the brushed runs, the line
  // layers only note what they were asked to draw; the last of it is drawn once the table is
  // painted and answered. The layers are plotly's own (a canvas's bound data): where a version of
  // plotly names them otherwise, nothing is deferred and brushing only stays as slow.
  function deferLineRendering(host) {
    var layers = [], canvases = [];
    host.querySelectorAll("canvas").forEach(function (canvas) {
      var layer = canvas.__data__ && canvas.__data__.lineLayer;
      if (layer && typeof layer.render === "function" && !layer.deferred &&
          layers.indexOf(layer) === -1) { layers.push(layer); canvases.push(canvas); }
    });
    if (!layers.length) return;
    var asked = [], own = layers.map(function (layer) { return layer.render; });
    layers.forEach(function (layer) {
      layer.deferred = true;
      layer.render = function () { asked.push([layer, arguments]); };
    });
    var ended = function () {
      window.removeEventListener("mouseup", ended, true);
      // After plotly's own handler of this mouseup (it asks for the table), once that is painted.
      window.requestAnimationFrame(function () {
        whenSettled(function () {
          layers.forEach(function (layer, i) { layer.render = own[i]; delete layer.deferred; });
          var last = new Map();
          asked.forEach(function (call) { last.set(call[0], call[1]); });
          last.forEach(function (args, layer) {
            // A chart drawn since has layers of its own on these canvases.
            var canvas = canvases[layers.indexOf(layer)];
            if (canvas.__data__ && canvas.__data__.lineLayer === layer) layer.render.apply(layer, args);
          });
        });
      });
    };
    window.addEventListener("mouseup", ended, true);
  }

  // Plotly's parcoords has no hover labels, only events naming the line under the pointer: with
  // group means, our own label gives that group's mean ± std (n) on every axis.
  function showLineTip(event) {
    var tip = document.getElementById("parcoords-tip");
    var line = state.lineOrder[event.curveNumber];
    tip.hidden = !state.groupMeans || line === undefined;
    if (tip.hidden) return;
    var members = lines()[line];
    tip.textContent = "";
    tip.appendChild(el("div", { "class": "hint" },
                       members.length === 1 ? "1 run" : members.length + " runs"));
    chartColumns().forEach(function (column) {
      var row = el("div", { "data-key": column.key }, column.key + ": ");
      row.appendChild(el("span", { "class": "num" }, lineAxis(column.key).texts[line]));
      tip.appendChild(row);
    });
    var card = tip.parentNode.getBoundingClientRect();
    tip.style.left = (event.clientX - card.left + 12) + "px";
    tip.style.top = (event.clientY - card.top + 12) + "px";
  }

  // Colours by the chosen column on a Viridis scale; runs that did not end ok, and runs without a
  // number in that column, in grey: a colour value below the scale's numbers maps to it. A group's
  // line takes the mean of its ok runs' numbers.
  function lineColours(order, muted) {
    var colorColumn = state.payload.columns.find(function (c) { return c.key === state.colorKey; });
    var runs = chartRuns();
    var numbers = lines().map(function (members, j) {
      if (muted[j]) return null;
      var present = members.filter(function (i) { return runs[i].status === "ok"; })
        .map(function (i) { return colorColumn ? cell(runs[i], colorColumn.key).v : 1; })
        .filter(isNumber);
      return present.length ? meanAndStd(present)[0] : null;
    });
    var present = numbers.filter(function (n) { return n !== null; });
    var low = present.length ? Math.min.apply(null, present) : 0;
    var high = present.length ? Math.max.apply(null, present) : 1;
    if (high === low) high = low + 1;
    // The grey band is there only for runs that need it: otherwise the scale is all colour.
    var anyGrey = numbers.some(function (n) { return n === null; });
    var grey = anyGrey ? low - (high - low) * 0.25 : low;
    var edge = (low - grey) / (high - grey);
    var scale = (anyGrey ? [[0, MUTED], [edge, MUTED]] : []).concat(VIRIDIS.map(function (colour, i) {
      return [edge + (1 - edge) * i / (VIRIDIS.length - 1), colour];
    }));
    var line = {
      color: order.map(function (i) { return numbers[i] === null ? grey : numbers[i]; }),
      colorscale: scale, cmin: grey, cmax: high, showscale: Boolean(colorColumn)
    };
    if (colorColumn) {
      line.colorbar = { title: { text: colorColumn.key, side: "right" }, thickness: 10,
                        tickvals: niceTicks(low, high, 4) };
    }
    return line;
  }

  function scatterAxis(key) {
    var axis = axisOf(key);
    var layout = { title: { text: key }, zeroline: false };
    if (axis && axis.tickvals) {
      layout.tickmode = "array"; layout.tickvals = axis.tickvals; layout.ticktext = axis.ticktext;
    }
    return { values: axis ? axis.values : [], layout: layout };
  }

  function renderScatter() {
    var host = document.getElementById("scatter");
    var numeric = numericColumns();
    if (!window.Plotly) return;
    if (!numeric.length || !state.xKey || !state.yKey) {
      host.textContent = "";
      host.appendChild(el("div", { "class": "empty" }, "no numeric parameters or values yet"));
      return;
    }
    var runs = chartRuns().filter(function (r) { return passesBrush(r) && passesText(r); });
    var xAxis = scatterAxis(state.xKey), yAxis = scatterAxis(state.yKey);
    var byStatus = {};
    runs.forEach(function (run) {
      // None and missing values sit on their own tick, as on the parallel coordinates.
      var i = state.position.get(run.uuid);
      var x = xAxis.values[i], y = yAxis.values[i];
      var group = byStatus[run.status] = byStatus[run.status] || { x: [], y: [], text: [], customdata: [] };
      group.x.push(x); group.y.push(y); group.text.push(run.short);
      group.customdata.push([run.href, cell(run, state.xKey).t || state.payload.missing,
                             cell(run, state.yKey).t || state.payload.missing]);
    });
    var traces = Object.keys(byStatus).map(function (status) {
      var group = byStatus[status];
      return {
        type: "scatter", mode: "markers", name: status, x: group.x, y: group.y, text: group.text,
        customdata: group.customdata,
        hovertemplate: "%{text}<br>" + state.xKey + "=%{customdata[1]}<br>" + state.yKey +
          "=%{customdata[2]}<extra>" + status + "</extra>",
        marker: { size: 10, color: STATUS_COLOURS[status] || "#495057",
                  opacity: state.groupMeans ? .25 : .85, line: { width: 1, color: "#fff" } }
      };
    });
    if (state.groupMeans) traces.push(groupMeansTrace(runs));
    var layout = {
      margin: { l: 55, r: 10, t: 10, b: 45 }, font: PLOT_FONT, paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "#fafbfc", xaxis: xAxis.layout, yaxis: yAxis.layout,
      legend: { orientation: "h", y: 1.08 },
      hovermode: "closest"
    };
    Plotly.react(host, traces, layout, { displaylogo: false, responsive: true });
    if (!host.dataset.listening) {
      host.dataset.listening = "1";
      host.on("plotly_click", function (event) {
        var point = event.points && event.points[0];
        if (point && point.customdata && point.customdata[0]) window.location.href = point.customdata[0];
      });
    }
  }

  // One point per replicate group at the mean of its runs' numbers, with the sample standard
  // deviation as error bars (none for a group of one run).
  function groupMeansTrace(runs) {
    var groups = new Map();
    runs.forEach(function (run) {
      var x = cell(run, state.xKey).v, y = cell(run, state.yKey).v;
      if (typeof x !== "number" || typeof y !== "number") return;
      var group = groups.get(run.group);
      if (!group) { group = { x: [], y: [] }; groups.set(run.group, group); }
      group.x.push(x); group.y.push(y);
    });
    var trace = {
      type: "scatter", mode: "markers", name: "group mean ± std", x: [], y: [], text: [],
      error_x: { type: "data", array: [], visible: true, color: "#343a40" },
      error_y: { type: "data", array: [], visible: true, color: "#343a40" },
      marker: { size: 11, symbol: "diamond", color: "#343a40" },
      hovertemplate: "%{text}<br>" + state.xKey + "=%{x}<br>" + state.yKey + "=%{y}<extra></extra>"
    };
    groups.forEach(function (group) {
      var x = meanAndStd(group.x), y = meanAndStd(group.y);
      trace.x.push(x[0]); trace.y.push(y[0]);
      trace.error_x.array.push(x[1]); trace.error_y.array.push(y[1]);
      trace.text.push("n=" + group.x.length);
    });
    return trace;
  }

  function meanAndStd(values) {
    var mean = values.reduce(function (a, b) { return a + b; }, 0) / values.length;
    if (values.length < 2) return [mean, 0];
    var squares = values.reduce(function (a, b) { return a + (b - mean) * (b - mean); }, 0);
    return [mean, Math.sqrt(squares / (values.length - 1))];
  }

  // keepTable: the table on the page shows this payload's rows and columns already (the charts'
  // sample has come for it), only the charts are drawn.
  function renderAll(keepTable) {
    state.axes = {};
    state.lines = null;
    state.position = new Map(chartRuns().map(function (r, i) { return [r.uuid, i]; }));
    chooseDefaults();
    var numeric = numericColumns();
    fillSelect(document.getElementById("color-by"), numeric, state.colorKey);
    fillSelect(document.getElementById("scatter-x"), numeric, state.xKey);
    fillSelect(document.getElementById("scatter-y"), numeric, state.yKey);
    if (!keepTable) {
      renderColumnsMenu();
      renderTable();
      updateCompareButton();
    }
    // The table first, painted at once; the charts once that frame is painted and the user has
    // settled (see whenSettled), and only those of the latest payload. Parsing plotly.js and
    // drawing the parcoords in WebGL are tasks of a second or more where Chromium draws in
    // software: a click landing in one waits for its end. So each step is a task of its own,
    // started only while the user is not acting, the scatter (a tenth of the parcoords' time)
    // before the parcoords. A paged table's first page comes without the charts' sample: it is
    // asked for then.
    var drawing = state.drawing = (state.drawing || 0) + 1;
    var current = function (fn) {
      return function () { if (drawing === state.drawing) fn(); };
    };
    window.requestAnimationFrame(function () {
      whenSettled(current(function () {
        if (!complete() && !state.payload.sample) { loadSample(); return; }
        whenPlotly(function () {
          whenSettled(current(function () {
            renderScatter();
            whenSettled(current(renderParcoords));
          }));
        });
      }));
    });
  }

  function whenIdle(fn) {
    if (window.requestIdleCallback) window.requestIdleCallback(fn, { timeout: 1000 });
    else window.setTimeout(fn, 0);
  }

  // The user's last press of a key, button or wheel (at first: the page's start, when they begin
  // to read it), and whether a button is held (a drag).
  var QUIET_MS = 1000;
  var input = { last: performance.now(), held: false };
  ["pointerdown", "keydown", "wheel"].forEach(function (name) {
    window.addEventListener(name, function () {
      input.last = performance.now();
      if (name === "pointerdown") input.held = true;
    }, true);
  });
  window.addEventListener("pointerup", function () {
    input.last = performance.now();
    input.held = false;
  }, true);

  // Runs fn, when idle, once no table request the user made is unanswered and the user has done
  // nothing for QUIET_MS: the charts' tasks cannot be cut short (parsing plotly.js, 0.4-1.5 s,
  // drawing the parcoords in software WebGL, 0.5-2.5 s), and a click landing in one waits for
  // its end; a second without input says the user is reading, not about to click.
  function whenSettled(fn) {
    if (state.pending || input.held || performance.now() - input.last < QUIET_MS) {
      window.setTimeout(function () { whenSettled(fn); }, 50);
      return;
    }
    whenIdle(fn);
  }

  // --- loading and polling -------------------------------------------------------------------

  function showError(message) { document.getElementById("filter-error").textContent = message || ""; }

  // The query string of /api/runs: the filter, and when the server pages the table, its sort,
  // brush and page.
  function apiUrl(where, force, tableOnly) {
    var params = new URLSearchParams();
    if (where) params.set("where", where);
    if (state.payload && !complete()) {
      if (state.sortKey) { params.set("sort", state.sortKey); if (state.sortAsc) params.set("asc", "1"); }
      var brush = {};
      Object.keys(state.brush).forEach(function (key) {
        var column = state.payload.columns.find(function (c) { return c.key === key; });
        if (column && column.numeric) brush[key] = state.brush[key];
      });
      if (Object.keys(brush).length) params.set("brush", JSON.stringify(brush));
      if (state.offset) params.set("offset", String(state.offset));
      if (state.after) params.set("after", state.after);
      if (tableOnly) params.set("charts", "0");
    }
    if (!force && state.version) params.set("since", state.version);
    var query = params.toString();
    return config.api + (query ? "?" + query : "");
  }

  // A new page of the table; with tableOnly (a sort, a page, a brush of a paged table), the
  // charts and their sample stay as they are.
  function reload(offset, tableOnly, after) {
    state.offset = offset;
    state.after = after || null;
    if (!offset) state.pages = [];
    return load(document.getElementById("where").value, true, tableOnly);
  }

  // A request the user makes (a filter, a sort, a page, a brush) supersedes every earlier one:
  // their answers, polls' included, would show a table the user has moved away from.
  function load(where, force, tableOnly) {
    var url = apiUrl(where, force, tableOnly);
    var request = state.requests = state.requests + 1;
    if (force) { state.latest = request; state.pending += 1; }
    return fetchJson(url).then(function (result) {
      if (request < state.latest) return;
      var live = document.getElementById("live");
      if (!result.ok) { showError(result.body.error); return; }
      if (live) { live.classList.remove("stale"); live.title = "updated " + new Date().toLocaleTimeString(); }
      state.version = result.body.version || null;
      // A poll's "nothing written since" is answered before the condition is read: the error
      // of a bad condition stands until a table answers it.
      if (result.body.unchanged) return;
      showError("");
      if (tableOnly && state.payload && !complete() && !result.body.complete) {
        result.body.columns = state.payload.columns;
        result.body.sample = state.payload.sample;
        result.body.sampled = state.payload.sampled;
        state.payload = result.body;
        renderTable();
        return;
      }
      if (force || !state.payload || state.payload.signature !== result.body.signature) {
        state.payload = result.body;
        renderAll();
      }
    }).catch(function () {
      var live = document.getElementById("live");
      if (live) live.classList.add("stale");
    }).then(function () {
      if (force) state.pending -= 1;
    });
  }

  // The charts' sample of the runs the filter selects, for a table that came without it (the
  // first page, inside the HTML): the table stays as it is, whatever was asked since.
  function loadSample() {
    var where = document.getElementById("where").value;
    fetchJson(apiUrl(where, true)).then(function (result) {
      var body = result.body;
      if (!result.ok || body.unchanged || !body.sample || state.payload.where !== body.where) return;
      // Columns are judged on the sample: the table is drawn again only if that changes them.
      var same = JSON.stringify(state.payload.columns) === JSON.stringify(body.columns);
      state.payload.columns = body.columns;
      state.payload.sample = body.sample;
      state.payload.sampled = body.sampled;
      renderAll(same);
    }).catch(function () {
      var live = document.getElementById("live");
      if (live) live.classList.add("stale");
    });
  }

  function fetchJson(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    });
  }

  function startRunsPage() {
    var form = document.getElementById("filter-form");
    var input = document.getElementById("where");
    document.getElementById("color-by").addEventListener("change", function (e) { state.colorKey = e.target.value; renderParcoords(); });
    document.getElementById("scatter-x").addEventListener("change", function (e) { state.xKey = e.target.value; renderScatter(); });
    document.getElementById("scatter-y").addEventListener("change", function (e) { state.yKey = e.target.value; renderScatter(); });
    document.getElementById("group-means").addEventListener("change", function (e) {
      state.groupMeans = e.target.checked;
      state.lines = null;
      if (complete()) renderTable();
      renderParcoords();
      renderScatter();
    });
    if (config.mode === "report") {
      state.payload = config.data;
      form.addEventListener("submit", function (e) { e.preventDefault(); state.textFilter = input.value; renderTable(); renderScatter(); });
      document.getElementById("clear-filter").addEventListener("click", function () { input.value = ""; state.textFilter = ""; renderTable(); renderScatter(); });
      renderAll();
      return;
    }
    var params = new URLSearchParams(window.location.search);
    input.value = params.get("where") || "";
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var url = new URL(window.location.href);
      if (input.value) url.searchParams.set("where", input.value); else url.searchParams.delete("where");
      window.history.replaceState(null, "", url);
      reload(0);
    });
    // Pages are read after the last run of the one before (see /api/runs' `next`): going back
    // takes the run the page before was read after.
    document.getElementById("pager-previous").addEventListener("click", function () {
      var before = state.pages.pop();
      if (before) reload(before.offset, true, before.after);
    });
    document.getElementById("pager-next").addEventListener("click", function () {
      if (!state.payload.next) return;
      state.pages.push({ offset: state.offset, after: state.after });
      reload(state.offset + state.payload.runs.length, true, state.payload.next);
    });
    document.getElementById("clear-filter").addEventListener("click", function () {
      input.value = "";
      form.requestSubmit();
    });
    if (config.data) {
      state.payload = config.data;
      state.version = config.data.version || null;
      renderAll();
    } else {
      load(input.value, true);
    }
    window.setInterval(function () { if (!document.hidden) load(input.value, false); }, POLL_MS);
  }

  function renderMetricCharts() {
    document.querySelectorAll("script.metric-data").forEach(function (script) {
      var data = JSON.parse(script.textContent);
      var host = script.parentNode.querySelector(".metric-chart");
      Plotly.newPlot(host, [{ type: "scatter", mode: "lines+markers", x: data.step, y: data.value,
                               line: { color: "#3b5bdb", width: 2 }, marker: { size: 4 }, name: data.key }],
        { margin: { l: 50, r: 10, t: 10, b: 35 }, font: PLOT_FONT, paper_bgcolor: "rgba(0,0,0,0)",
          plot_bgcolor: "#fafbfc", xaxis: { title: { text: "step" } } },
        { displaylogo: false, responsive: true });
    });
  }

  if (document.getElementById("runs-table")) startRunsPage();
  if (document.querySelector("script.metric-data")) whenPlotly(renderMetricCharts);
})();
