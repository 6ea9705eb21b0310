// report.html's renderer. Everything a worker wrote reaches the page as a
// text node (textContent, createTextNode, SVG <title> text): never through
// innerHTML, attributes that run code, or URLs.
(function () {
  "use strict";
  var t0 = performance.now();
  var DATA = JSON.parse(document.getElementById("dispatch-data").textContent);
  var RUN = DATA.run;
  var TASKS = DATA.tasks;
  // The data leaves out empty fields to stay small; lists come back here.
  TASKS.forEach(function (t) {
    ["plan", "findings", "questions", "dropped", "unticked", "tags", "timeline", "waits", "marks"].forEach(function (k) {
      if (!Array.isArray(t[k])) t[k] = [];
    });
  });
  var PAGE_SIZE = 100;
  var SEVERITIES = ["critical", "high", "medium", "low", "info"];
  var SVG = "http://www.w3.org/2000/svg";

  // --- small helpers -------------------------------------------------------

  // el("td", {class: "num"}, "text", child): strings become text nodes.
  function el(tag, attrs) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    for (var i = 2; i < arguments.length; i++) add(node, arguments[i]);
    return node;
  }
  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    setAttrs(node, attrs);
    return node;
  }
  function setAttrs(node, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") node.textContent = String(v);
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, String(v));
    });
  }
  // add(node, child, ...): each child a node, a string, an array or null.
  function add(node) {
    for (var i = 1; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) { child.forEach(function (c) { add(node, c); }); continue; }
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function $(id) { return document.getElementById(id); }

  function duration(ms) {
    if (ms === null || ms === undefined) return "";
    if (ms < 1000) return ms + " ms";
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + " s";
    var m = Math.floor(s / 60), rest = Math.round(s % 60);
    if (m < 60) return m + "m" + (rest < 10 ? "0" : "") + rest + "s";
    return Math.floor(m / 60) + "h" + (m % 60 < 10 ? "0" : "") + (m % 60) + "m";
  }
  function tokens(u) { return u ? (u.input_tokens || 0) + (u.output_tokens || 0) : 0; }
  function cost(c) { return c === null || c === undefined ? "" : "$" + c.toFixed(c < 1 ? 4 : 2); }
  function num(n) { return (n || 0).toLocaleString("en-US"); }
  function badge(status, prefix) { return el("span", { class: "status " + (prefix || "st-") + status }, status); }
  function sevRank(s) { var i = SEVERITIES.indexOf(s); return i < 0 ? SEVERITIES.length : i; }

  // --- header --------------------------------------------------------------

  function header() {
    var head = $("head");
    var exit = RUN.exit_code === null ? "still running" : "exit code " + RUN.exit_code;
    add(head, [
      el("h1", null, "Sweep " + RUN.name),
      el("div", { class: "sub" }, "run " + RUN.run_id + " · " + RUN.manifest + " · started " + RUN.started_at +
        (RUN.wall_ms !== null ? " · wall time " + duration(RUN.wall_ms) : "")),
      el("div", { class: "why", id: "why" }, badge(RUN.status), " ", exit + ": " + RUN.why),
    ]);
    if (RUN.continues) add(head, el("div", { class: "sub" }, "continues run " + RUN.continues));
    var nav = $("tabs");
    [["Timeline", "timeline-section"], ["Tasks", "tasks-section"], ["Findings", "findings-section"]].forEach(function (p) {
      add(nav, el("button", { onclick: function () { showTask(null); $(p[1]).scrollIntoView(); } }, p[0]));
    });
  }

  function overview() {
    var box = $("overview");
    var totals = RUN.totals;
    var cards = el("div", { class: "cards" });
    add(cards, card(num(totals.tasks), "tasks"));
    Object.keys(totals.statuses).forEach(function (s) { add(cards, card(num(totals.statuses[s]), s)); });
    add(cards, card(num(tokens(totals.usage)), "tokens"));
    if (totals.usage.cost_usd !== null) add(cards, card(cost(totals.usage.cost_usd), "cost"));
    var findings = 0;
    Object.keys(totals.findings).forEach(function (s) { findings += totals.findings[s]; });
    add(cards, card(num(findings), "findings"));
    add(box, cards);
    if (RUN.escalations.length) {
      add(box, el("h3", null, "Escalations"), el("ul", { id: "escalations" }, RUN.escalations.map(function (e) { return el("li", null, e); })));
    }
    if (totals.models.length) {
      var rows = totals.models.map(function (m) {
        return el("tr", null, el("td", null, m.model), el("td", { class: "num" }, num(m.usage.input_tokens)),
          el("td", { class: "num" }, num(m.usage.output_tokens)), el("td", { class: "num" }, cost(m.usage.cost_usd)),
          el("td", { class: "num" }, m.budget && typeof m.budget.max_cost_usd === "number" ? cost(m.budget.max_cost_usd) : ""));
      });
      add(box, el("h3", null, "By model"), el("table", { id: "models" },
        el("thead", null, el("tr", null, el("th", null, "model"), el("th", { class: "num" }, "input tokens"),
          el("th", { class: "num" }, "output tokens"), el("th", { class: "num" }, "cost"), el("th", { class: "num" }, "budget"))),
        el("tbody", null, rows)));
    }
  }
  function card(value, label) { return el("div", { class: "card" }, el("b", null, value), el("span", null, label)); }

  // --- timeline ------------------------------------------------------------

  var COLORS = {};
  function color(status) {
    if (!(status in COLORS)) {
      COLORS[status] = getComputedStyle(document.documentElement).getPropertyValue("--" + status).trim() || "#94a3b8";
    }
    return COLORS[status];
  }

  // Attempts without a recorded lane (older records) get the lowest lane
  // free at their start, as the runner would have given them.
  function spans() {
    var all = [];
    TASKS.forEach(function (task, ti) {
      task.timeline.forEach(function (a, ai) {
        if (a.start === null) return;
        all.push({ ti: ti, ai: ai, lane: a.lane, start: a.start, end: a.end === null ? a.start : a.end });
      });
    });
    var busy = [];
    all.sort(function (x, y) { return x.start - y.start; }).forEach(function (s) {
      if (s.lane === null || s.lane === undefined) {
        var lane = 0;
        while (busy[lane] !== undefined && busy[lane] > s.start) lane++;
        s.lane = lane;
      }
      busy[s.lane] = Math.max(busy[s.lane] || 0, s.end);
    });
    return all;
  }

  function timeline() {
    var box = $("timeline");
    var all = spans();
    var legend = $("legend");
    ["complete", "failed", "timed-out", "incomplete", "blocked", "cancelled", "running"].forEach(function (s) {
      add(legend, el("span", null, el("i", { style: "background:" + color(s) }), s));
    });
    add(legend, el("span", null, el("i", { style: "background:" + color("wait") }), "question wait"),
      el("span", null, el("i", { style: "background:none;border:1px dashed currentColor" }), "retry"),
      el("span", null, "▼ escalation"));
    if (!all.length) { add(box, el("p", { class: "muted" }, "No attempt has started.")); return; }
    var lanes = RUN.lanes;
    all.forEach(function (s) { lanes = Math.max(lanes, s.lane + 1); });
    var end = RUN.wall_ms || 0;
    all.forEach(function (s) { end = Math.max(end, s.end); });
    end = Math.max(end, 1);
    var LANE_H = 20, TOP = 22, LEFT = 56;
    var width = Math.max(900, box.clientWidth - 2);
    var scale = (width - LEFT - 10) / end;
    var height = TOP + lanes * LANE_H + 6;
    var root = svg("svg", { width: width, height: height, role: "img", "aria-label": "timeline of attempts by lane" });
    for (var i = 0; i <= 5; i++) {
      var x = LEFT + (width - LEFT - 10) * i / 5;
      root.appendChild(svg("line", { x1: x, x2: x, y1: TOP - 4, y2: height, stroke: "currentColor", "stroke-opacity": 0.1 }));
      var label = svg("text", { x: x, y: 12, class: "axis", "text-anchor": i === 0 ? "start" : i === 5 ? "end" : "middle" });
      label.textContent = duration(Math.round(end * i / 5));
      root.appendChild(label);
    }
    for (var l = 0; l < lanes; l++) {
      var name = svg("text", { x: 4, y: TOP + l * LANE_H + 14, class: "lane-label" });
      name.textContent = "lane " + (l + 1);
      root.appendChild(name);
    }
    var bars = svg("g", { id: "bars" });
    all.forEach(function (s) {
      var task = TASKS[s.ti], a = task.timeline[s.ai];
      var status = a.status || task.status;
      var y = TOP + s.lane * LANE_H + 2;
      var rect = svg("rect", {
        class: "bar", x: LEFT + s.start * scale, y: y, height: LANE_H - 4, rx: 2,
        width: Math.max(1.5, (s.end - s.start) * scale), fill: color(status),
        "data-t": s.ti, "data-a": s.ai,
      });
      if (a.number > 1) { rect.setAttribute("stroke", "currentColor"); rect.setAttribute("stroke-dasharray", "3 2"); }
      bars.appendChild(rect);
      var room = Math.floor(((s.end - s.start) * scale - 8) / 7);
      if (room >= 4) {
        // The task's id on a bar wide enough for it (cut to fit).
        var name = task.id.length > room ? task.id.slice(0, room - 1) + "…" : task.id;
        var label = svg("text", { x: LEFT + s.start * scale + 4, y: y + LANE_H - 8, class: "bar-label", "data-t": s.ti, "data-a": s.ai });
        label.textContent = name;
        bars.appendChild(label);
      }
      task.waits.forEach(function (w) {
        if (w.start === null || w.start < s.start || w.start > s.end) return;
        var wend = w.end === null ? s.end : Math.min(w.end, s.end);
        bars.appendChild(svg("rect", {
          class: "bar wait", x: LEFT + w.start * scale, y: y + LANE_H - 9, height: 5,
          width: Math.max(1.5, (wend - w.start) * scale), fill: color("wait"), "data-t": s.ti, "data-a": s.ai, "data-w": w.seq,
        }));
      });
      // An escalation goes on the last attempt that started before it
      // fired (a rule on a task's end fires just after its attempt ends).
      task.marks.forEach(function (m) {
        if (m.at === null || m.at < s.start && s.ai > 0) return;
        var later = task.timeline.some(function (b, bi) { return bi > s.ai && b.start !== null && b.start <= m.at; });
        if (later) return;
        var mx = LEFT + Math.min(Math.max(m.at, s.start), s.end) * scale;
        bars.appendChild(svg("path", {
          class: "bar mark", d: "M" + (mx - 4) + " " + (y - 2) + "h8l-4 6z", fill: color("failed"), "data-t": s.ti, "data-a": s.ai,
        }));
      });
    });
    root.appendChild(bars);
    bars.addEventListener("mousemove", hover);
    bars.addEventListener("mouseleave", function () { $("tip").hidden = true; });
    bars.addEventListener("click", function (e) {
      var t = e.target.getAttribute("data-t");
      if (t !== null) location.hash = "#task=" + encodeURIComponent(TASKS[+t].id);
    });
    add(box, root);
  }

  function hover(e) {
    var t = e.target.getAttribute("data-t");
    var tip = $("tip");
    if (t === null) { tip.hidden = true; return; }
    var task = TASKS[+t], a = task.timeline[+e.target.getAttribute("data-a")];
    var lines = [task.id + " — " + task.title, "attempt " + a.number + ": " + (a.status || task.status) +
      (a.start !== null && a.end !== null ? ", " + duration(a.end - a.start) : "")];
    if (a.reason) lines.push(a.reason);
    var w = e.target.getAttribute("data-w");
    if (w !== null) {
      var wait = task.waits.filter(function (x) { return String(x.seq) === w; })[0];
      if (wait) lines.push("question #" + w + " waited " + (wait.end === null ? "unanswered" : duration(wait.end - wait.start)));
    }
    task.marks.forEach(function (m) { lines.push("escalation: " + m.summary); });
    tip.textContent = lines.join("\n");
    tip.hidden = false;
    tip.style.left = Math.min(e.clientX + 12, window.innerWidth - 440) + "px";
    tip.style.top = (e.clientY + 12) + "px";
  }

  // --- task table ----------------------------------------------------------

  var view = { failures: false, tag: "", model: "", text: "", sort: null, desc: false, page: 0 };
  var hasChecks = TASKS.some(function (t) { return Array.isArray(t.checks) && t.checks.length; });
  var COLUMNS = [
    { key: "id", label: "task", value: function (t) { return t.id; } },
    { key: "title", label: "title", value: function (t) { return t.title; } },
    { key: "status", label: "status", value: function (t) { return t.status; }, cell: function (t) { return badge(t.status); } },
    { key: "model", label: "model", value: function (t) { return t.model || ""; } },
    { key: "duration", label: "duration", num: true, value: function (t) { return t.duration_ms || 0; }, cell: function (t) { return duration(t.duration_ms); } },
    { key: "attempts", label: "attempts", num: true, value: function (t) { return t.attempts; } },
    { key: "tokens", label: "tokens", num: true, value: function (t) { return tokens(t.usage); }, cell: function (t) { return num(tokens(t.usage)); } },
    { key: "cost", label: "cost", num: true, value: function (t) { return t.usage.cost_usd || 0; }, cell: function (t) { return cost(t.usage.cost_usd); } },
    { key: "plan", label: "plan", num: true, value: function (t) { return t.items_total ? t.items_done / t.items_total : 0; }, cell: function (t) { return t.items_done + "/" + t.items_total; } },
  ];
  if (hasChecks) {
    COLUMNS.push({ key: "checks", label: "checks", num: true, value: function (t) { return checkCounts(t).passed; },
      cell: function (t) { var c = checkCounts(t); return c.total ? c.passed + "/" + c.total : ""; } });
  }
  function checkCounts(t) {
    var list = Array.isArray(t.checks) ? t.checks : [];
    var passed = list.filter(function (c) { return c && (c.passed === true || c.status === "passed" || c.ok === true); }).length;
    return { passed: passed, total: list.length };
  }

  function filters() {
    var box = $("filters");
    var tags = {}, models = {};
    TASKS.forEach(function (t) { t.tags.forEach(function (g) { tags[g] = 1; }); if (t.model) models[t.model] = 1; });
    function select(id, label, values, key) {
      var s = el("select", { id: id, onchange: function () { view[key] = s.value; view.page = 0; table(); } },
        el("option", { value: "" }, "all " + label));
      Object.keys(values).sort().forEach(function (v) { add(s, el("option", { value: v }, v)); });
      return el("label", null, s);
    }
    var failures = el("input", { type: "checkbox", id: "filter-failures", onchange: function () { view.failures = failures.checked; view.page = 0; table(); } });
    var text = el("input", { type: "search", id: "filter-text", placeholder: "search id or title", oninput: function () { view.text = text.value.toLowerCase(); view.page = 0; table(); } });
    add(box, el("label", null, failures, " failures only"), select("filter-tag", "tags", tags, "tag"),
      select("filter-model", "models", models, "model"), text, el("span", { id: "shown", class: "muted" }));
  }

  function visible() {
    var rows = TASKS.filter(function (t) {
      if (view.failures && !t.attention) return false;
      if (view.tag && t.tags.indexOf(view.tag) < 0) return false;
      if (view.model && t.model !== view.model) return false;
      if (view.text && (t.id + " " + t.title).toLowerCase().indexOf(view.text) < 0) return false;
      return true;
    });
    if (view.sort) {
      var col = COLUMNS.filter(function (c) { return c.key === view.sort; })[0];
      rows = rows.map(function (t, i) { return [col.value(t), i, t]; });
      var dir = view.desc ? -1 : 1;
      // Ties keep the schedule order, whichever way the column sorts.
      rows.sort(function (a, b) { return (a[0] < b[0] ? -dir : a[0] > b[0] ? dir : a[1] - b[1]); });
      rows = rows.map(function (r) { return r[2]; });
    }
    return rows;
  }

  function table() {
    var rows = visible();
    var pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    view.page = Math.min(view.page, pages - 1);
    var head = el("tr", null, COLUMNS.map(function (c) {
      var mark = view.sort === c.key ? (view.desc ? " ▼" : " ▲") : "";
      return el("th", { class: "sort" + (c.num ? " num" : ""), "data-key": c.key, onclick: function () {
        view.desc = view.sort === c.key ? !view.desc : false; view.sort = c.key; table();
      } }, c.label + mark);
    }));
    var body = el("tbody");
    rows.slice(view.page * PAGE_SIZE, (view.page + 1) * PAGE_SIZE).forEach(function (t) {
      add(body, el("tr", { class: "row", "data-id": t.id, onclick: function () { location.hash = "#task=" + encodeURIComponent(t.id); } },
        COLUMNS.map(function (c) { return el("td", c.num ? { class: "num" } : null, c.cell ? c.cell(t) : c.value(t)); })));
    });
    add(clear($("table")), el("table", { id: "task-table" }, el("thead", null, head), body));
    $("shown").textContent = rows.length + " of " + TASKS.length + " tasks";
    pager($("pager"), view.page, pages, function (p) { view.page = p; table(); });
  }

  function pager(box, page, pages, go) {
    clear(box);
    if (pages < 2) return;
    add(box, el("button", { disabled: page === 0, onclick: function () { go(page - 1); } }, "‹ previous"),
      el("span", null, "page " + (page + 1) + " of " + pages),
      el("button", { disabled: page >= pages - 1, onclick: function () { go(page + 1); } }, "next ›"));
  }

  // --- findings ------------------------------------------------------------

  var FINDINGS = [];
  TASKS.forEach(function (t) { t.findings.forEach(function (f) { FINDINGS.push({ task: t.id, f: f }); }); });
  FINDINGS.sort(function (a, b) { return sevRank(a.f.severity) - sevRank(b.f.severity); });

  function findings(page) {
    var box = clear($("findings"));
    if (!FINDINGS.length) { add(box, el("p", { class: "muted" }, "No findings.")); return; }
    var pages = Math.ceil(FINDINGS.length / PAGE_SIZE);
    var body = el("tbody");
    FINDINGS.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE).forEach(function (x) {
      add(body, el("tr", { class: "row", onclick: function () { location.hash = "#task=" + encodeURIComponent(x.task); } },
        el("td", null, badge(x.f.severity, "sev-")), el("td", null, x.task), el("td", null, x.f.title),
        el("td", null, x.f.location || ""), el("td", null, x.f.detail || "")));
    });
    var nav = el("div");
    add(box, el("table", { id: "findings-table" }, el("thead", null, el("tr", null, ["severity", "task", "title", "location", "detail"].map(function (h) { return el("th", null, h); }))), body), nav);
    pager(nav, page, pages, findings);
  }

  // --- one task ------------------------------------------------------------

  function showTask(id) {
    var page = $("task-page");
    var task = id === null ? null : TASKS.filter(function (t) { return t.id === id; })[0];
    ["overview", "timeline-section", "tasks-section", "findings-section"].forEach(function (s) { $(s).hidden = !!task; });
    page.hidden = !task;
    if (!task) { if (id !== null && location.hash) history.replaceState(null, "", location.pathname + location.search); return; }
    clear(page);
    add(page, el("button", { class: "back", onclick: function () { location.hash = ""; } }, "‹ all tasks"),
      el("h2", { id: "task-title" }, task.id + " — " + task.title),
      el("p", null, badge(task.status), " ", task.reason || ""));
    var facts = [["model", task.model || "—"], ["backend", task.backend], ["priority", task.priority],
      ["attempts", task.attempts], ["duration", duration(task.duration_ms)], ["turns", task.usage.turns],
      ["tokens", num(task.usage.input_tokens) + " in, " + num(task.usage.output_tokens) + " out"], ["cost", cost(task.usage.cost_usd) || "—"]];
    if (task.carried_from) facts.push(["carried from run", task.carried_from]);
    add(page, el("table", { class: "facts" }, el("tbody", null, facts.map(function (f) { return el("tr", null, el("th", null, f[0]), el("td", null, String(f[1]))); }))));
    if (task.tags.length) add(page, el("p", null, task.tags.map(function (g) { return el("span", { class: "tag" }, g); })));
    if (task.timeline.length) {
      add(page, el("h3", null, "Attempts"), el("ol", null, task.timeline.map(function (a) {
        return el("li", null, (a.status || "running") + (a.start !== null && a.end !== null ? ", " + duration(a.end - a.start) : "") +
          (a.lane !== null && a.lane !== undefined ? ", lane " + (a.lane + 1) : "") + (a.reason ? ": " + a.reason : ""));
      })));
    }
    add(page, el("h3", null, "Plan (" + task.items_done + "/" + task.items_total + ")"), el("ul", { class: "plan", id: "plan" }, task.plan.map(function (i) {
      return el("li", null, el("code", null, "[" + i.state + "] "), i.text, i.note ? el("span", { class: "note" }, " — " + i.note) : null);
    })));
    if (task.dropped.length) add(page, el("h3", null, "Removed from the plan by the worker"), el("ul", null, task.dropped.map(function (d) { return el("li", null, d); })));
    if (task.unticked.length) add(page, el("h3", null, "Declared done, never ticked"), el("ul", null, task.unticked.map(function (d) { return el("li", null, d); })));
    if (task.findings.length) {
      add(page, el("h3", null, "Findings"), el("ul", { id: "task-findings" }, task.findings.map(function (f) {
        return el("li", null, badge(f.severity, "sev-"), " ", f.title, f.location ? el("code", null, " " + f.location) : null, f.detail ? el("div", { class: "muted" }, f.detail) : null);
      })));
    }
    if (task.questions.length) {
      add(page, el("h3", null, "Questions"), el("ul", null, task.questions.map(function (q) {
        return el("li", null, el("div", null, "Q: " + q.text), el("div", { class: "muted" }, q.answer === null ? "unanswered" : "A: " + q.answer + (q.answered_by ? " (" + q.answered_by + ")" : "")));
      })));
    }
    if (task.marks.length) add(page, el("h3", null, "Escalations"), el("ul", null, task.marks.map(function (m) { return el("li", null, m.summary); })));
    if (Array.isArray(task.checks) && task.checks.length) {
      add(page, el("h3", null, "Checks"), el("ul", { id: "task-checks" }, task.checks.map(function (c) {
        return el("li", null, Object.keys(c || {}).filter(function (k) { return c[k] !== null && typeof c[k] !== "object"; })
          .map(function (k) { return k + ": " + c[k]; }).join(" · "));
      })));
    }
    if (task.branch) {
      var b = task.branch;
      add(page, el("h3", null, "Branch"), el("p", null, el("code", null, b.name), " from " + b.base + ": " + b.ahead + " commit(s), " +
        b.files_changed + " file(s) +" + b.insertions + " −" + b.deletions + (b.uncommitted ? ", " + b.uncommitted + " uncommitted" : "")));
      if (b.commits && b.commits.length) add(page, el("ul", null, b.commits.map(function (c) { return el("li", null, el("code", null, c.id), " " + c.subject); })));
      var ready = RUN.merge_readiness;
      if (ready) {
        ready.branches.filter(function (r) { return r.task === task.id; }).forEach(function (r) {
          add(page, el("p", null, r.merge.clean ? "merges cleanly into " + r.merge.into : "conflicts with " + r.merge.into + ": " + r.merge.conflicts.join(", ")));
        });
        ready.conflicts.filter(function (c) { return c.task === task.id || c.other_task === task.id; }).forEach(function (c) {
          add(page, el("p", null, "conflicts with task " + (c.task === task.id ? c.other_task : c.task) + " in " + c.files.join(", ")));
        });
      }
    }
    if (task.output_head) add(page, el("h3", null, "Output (" + task.output_path + ")"), el("pre", null, task.output_head));
    add(page, el("h3", null, "Log (last " + RUN.text_limit + " bytes, redacted)"), el("pre", { id: "log-tail" }, task.log_tail || "(empty)"));
    window.scrollTo(0, 0);
  }

  function route() {
    var m = /^#task=(.*)$/.exec(location.hash);
    showTask(m ? decodeURIComponent(m[1]) : null);
  }

  header();
  overview();
  timeline();
  filters();
  table();
  findings(0);
  window.addEventListener("hashchange", route);
  route();
  document.body.setAttribute("data-render-ms", String(Math.round(performance.now() - t0)));
  document.body.setAttribute("data-rendered", "1");
})();
