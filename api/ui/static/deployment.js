// The live deployment page: renders the deployment's body (as GET /api/v1/deployments/{id}
// answers it) and follows the event stream. No inline script: the CSP forbids it.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const FINAL = ["succeeded", "rolled_back", "aborted", "failed"];
  const text = (tag, value, cls) => {
    const el = document.createElement(tag);
    el.textContent = value == null ? "" : String(value);
    if (cls) el.className = cls;
    return el;
  };
  const clear = (el) => { while (el.firstChild) el.removeChild(el.firstChild); };

  function renderWeights(view) {
    const box = $("weights"), status = view.status || {};
    clear(box);
    const weights = status.weights || {};
    const names = Object.keys(weights);
    const parts = [];
    // Once promoted, the new version's slot becomes the stable one (and new_slot is null).
    const promoted = !status.new_slot && view.state === "succeeded";
    const versionOf = (slot) => {
      if (slot === status.new_slot) return view.version;
      if (slot === status.stable_slot) return promoted ? view.version : (status.previous_version || slot);
      return promoted ? (status.previous_version || slot) : view.version;
    };
    for (const slot of names) {
      const w = weights[slot];
      const isNew = versionOf(slot) === view.version;
      const label = versionOf(slot) + " " + w + "%";
      parts.push(label);
      if (w <= 0) continue;
      const bar = text("span", label, isNew ? "canary" : "stable");
      bar.style.width = w + "%";
      box.appendChild(bar);
    }
    box.setAttribute("aria-label", "traffic: " + (parts.join(", ") || "none yet"));
    $("weights-text").textContent = parts.length ? parts.join(" · ") : "No traffic split yet.";
  }

  const PLAN = JSON.parse($("plan").textContent);
  function renderSteps(view) {
    const list = $("steps"), status = view.status || {};
    clear(list);
    const total = status.steps || PLAN.length, current = status.step || 0;
    for (let i = 1; i <= total; i++) {
      const done = i < current || (i === current && FINAL.includes(view.state));
      const name = PLAN[i - 1] || "step " + i;
      const li = text("li", name + (i === current && !done ? " — now (" + (status.phase || "") + ")" : ""),
        done ? "done" : i === current ? "current" : "");
      if (i === current && !done) li.setAttribute("aria-current", "step");
      list.appendChild(li);
    }
    if (!total) list.appendChild(text("li", status.phase || view.state));
  }

  // A judge metric's measurement: the judgement's verdict and score, its reason, and each
  // compared metric's verdict and reason (its samples, test, p-value and effect in words).
  // Text nodes only, so nothing in a reason can become markup.
  function judgementCell(j) {
    const td = document.createElement("td");
    td.appendChild(text("strong", "Judged " + j.verdict + " at score " + Math.round(Number(j.score) * 100) / 100 + " of 100",
      "verdict " + String(j.verdict).toLowerCase()));
    td.appendChild(text("p", j.reason, "note"));
    const list = document.createElement("ul");
    for (const m of j.metrics || []) {
      list.appendChild(text("li", m.metric + (m.critical ? " (critical)" : "") + ": " + m.verdict + " — " + m.reason));
    }
    if (list.firstChild) td.appendChild(list);
    return td;
  }

  function renderMeasurements(view) {
    const body = $("measurements"), ms = (view.status && view.status.measurements) || [];
    clear(body);
    for (const m of ms.slice().reverse()) {
      const tr = document.createElement("tr");
      tr.appendChild(text("td", new Date(m.at).toLocaleTimeString()));
      tr.appendChild(text("td", m.metric));
      tr.appendChild(text("td", m.value == null ? "—" : Number(m.value).toPrecision(3)));
      tr.appendChild(text("td", m.phase, "verdict " + String(m.phase).toLowerCase()));
      tr.appendChild(m.judgement ? judgementCell(m.judgement) : text("td", m.message));
      body.appendChild(tr);
    }
    if (!ms.length) {
      const tr = document.createElement("tr");
      const td = text("td", "No measurements yet.");
      td.colSpan = 5;
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  function renderApprovals(view) {
    const list = $("approvals"), status = view.status || {};
    clear(list);
    for (const a of status.approvals || []) {
      list.appendChild(text("li", "Step " + a.step + ": approved by " + a.by + " at " +
        new Date(a.at).toLocaleTimeString() + (a.comment ? " — " + a.comment : "")));
    }
    if (status.pause_reason && !FINAL.includes(view.state)) list.appendChild(text("li", "Waiting: " + (status.paused_reason || status.pause_reason)));
    if (!list.firstChild) list.appendChild(text("li", "None needed so far."));
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, content) {
    const el = document.createElementNS(SVG, tag);
    for (const k in attrs) el.setAttribute(k, attrs[k]);
    if (content != null) el.textContent = content;
    return el;
  }
  // Error rate (left axis, solid) and latency (right axis, dashed) per version over the
  // deployment's time: from Prometheus' router metrics when the API has them (TRAFFIC),
  // else from the analysis' measurements of the new version.
  let TRAFFIC = null;
  const COLOURS = ["#0b57a4", "#4a4a4a", "#7a4b00", "#6a1b9a"];
  function seriesOf(view) {
    if (TRAFFIC && Object.keys(TRAFFIC.versions).length) {
      return Object.entries(TRAFFIC.versions).map(([version, s]) => ({
        version,
        err: (s.error_rate || []).map(([t, v]) => ({ t, v })),
        lat: (s.latency_ms || []).map(([t, v]) => ({ t, v: v / 1000 })),
      }));
    }
    const one = { version: view.version, err: [], lat: [] };
    for (const m of (view.status && view.status.measurements) || []) {
      if (m.value == null) continue;
      const name = String(m.metric).toLowerCase();
      const kind = name.includes("error") ? "err" : name.includes("lat") || name.includes("p9") ? "lat" : null;
      if (kind) one[kind].push({ t: Date.parse(m.at), v: Number(m.value) / (kind === "lat" ? 1000 : 1) });
    }
    return [one];
  }
  function renderChart(view) {
    const box = $("chart");
    clear(box);
    const all = seriesOf(view);
    // The new version first (blue), the one it replaces next (grey).
    all.sort((a, b) => (b.version === view.version) - (a.version === view.version));
    const W = 640, H = 235, L = 50, R = 60, T = 30, B = 30;
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": "error rate and latency per version over the deployment's time" });
    const points = all.flatMap((s) => s.err.concat(s.lat));
    const start = view.status && view.status.started_at ? Date.parse(view.status.started_at) : Date.parse(view.created_at);
    const finished = view.finished_at ? Date.parse(view.finished_at) : Date.now();
    const end = Math.max(finished, ...points.map((p) => p.t), start + 1000);
    root.appendChild(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
    root.appendChild(svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
    root.appendChild(svg("line", { x1: W - R, y1: T, x2: W - R, y2: H - B, class: "axis" }));
    const x = (t) => L + ((Math.max(t, start) - start) / (end - start)) * (W - L - R);
    const maxErr = Math.max(0.01, ...all.flatMap((s) => s.err.map((p) => p.v)));
    const maxLat = Math.max(0.001, ...all.flatMap((s) => s.lat.map((p) => p.v)));
    const line = (pts, max, colour, dashed) => {
      if (!pts.length) return;
      const y = (v) => H - B - (v / max) * (H - T - B);
      const attrs = { fill: "none", stroke: colour, "stroke-width": 2,
        points: pts.map((p) => x(p.t).toFixed(1) + "," + y(p.v).toFixed(1)).join(" ") };
      if (dashed) attrs["stroke-dasharray"] = "5 3";
      root.appendChild(svg("polyline", attrs));
    };
    all.forEach((s, i) => {
      const colour = COLOURS[i % COLOURS.length];
      line(s.err, maxErr, colour, false);
      line(s.lat, maxLat, colour, true);
      const legend = svg("text", { x: L + 8 + i * 130, y: 16 }, s.version); // above the plot
      legend.style.fill = colour; // CSSOM: allowed by the CSP, unlike a style attribute
      root.appendChild(legend);
    });
    root.appendChild(svg("text", { x: 4, y: H - B + 14 }, "errors"));
    root.appendChild(svg("text", { x: 4, y: T + 10 }, (maxErr * 100).toPrecision(2) + "%"));
    root.appendChild(svg("text", { x: W - R + 4, y: T + 10 }, (maxLat * 1000).toPrecision(3) + " ms"));
    root.appendChild(svg("text", { x: W - R + 4, y: H - B + 14 }, "p95"));
    root.appendChild(svg("text", { x: L, y: H - 8 }, "start"));
    root.appendChild(svg("text", { x: W - R - 50, y: H - 8 }, "+" + Math.round((end - start) / 1000) + " s"));
    root.appendChild(svg("title", {}, "solid: error rate; dashed: p95 latency; one colour per version"));
    box.appendChild(root);
    const source = $("chart-source");
    if (TRAFFIC && Object.keys(TRAFFIC.versions).length) {
      source.textContent = "From the router metrics in Prometheus, per version (solid: error rate, dashed: p95 latency).";
    } else if (!points.length) {
      source.textContent = "No error-rate or latency data yet" +
        (TRAFFIC && TRAFFIC.error ? " (Prometheus: " + TRAFFIC.error + ")" : "") + ".";
    } else {
      source.textContent = "From the analysis' measurements of " + view.version + " (solid: error rate, dashed: latency).";
    }
  }

  let lastTraffic = 0, latest = null;
  async function refreshTraffic(url, force) {
    if (!force && Date.now() - lastTraffic < 5000) return;
    lastTraffic = Date.now();
    try {
      const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (resp.ok) TRAFFIC = await resp.json();
    } catch (e) { /* the chart keeps what it has */ }
    if (latest) renderChart(latest);
  }

  function render(view) {
    latest = view;
    const state = $("state");
    state.textContent = view.state;
    state.className = "state " + view.state;
    $("phase").textContent = view.status ? "(" + view.status.phase + ")" : "";
    $("reason").textContent = view.reason || (view.status && view.status.paused_reason) || "";
    renderWeights(view);
    renderSteps(view);
    renderMeasurements(view);
    renderApprovals(view);
    renderChart(view);
    const actions = $("actions");
    if (actions && FINAL.includes(view.state)) actions.hidden = true;
  }

  function follow(url) {
    if (!window.EventSource) return;
    const source = new EventSource(url);
    source.addEventListener("status", (e) => {
      $("live").textContent = "live";
      render(JSON.parse(e.data));
      refreshTraffic(config.dataset.traffic, false);
    });
    source.addEventListener("end", (e) => {
      render(JSON.parse(e.data));
      refreshTraffic(config.dataset.traffic, true);
      $("live").textContent = "ended";
      source.close();
    });
    source.onerror = () => { $("live").textContent = "reconnecting…"; };
  }

  // Actions by fetch (the CSRF token in a header), so the page and its stream stay open;
  // the plain forms work without JS too.
  function wireActions(csrf) {
    for (const form of document.querySelectorAll("form.action")) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const button = form.querySelector("button");
        button.disabled = true;
        const result = $("action-result");
        try {
          const resp = await fetch(form.action, {
            method: "POST", credentials: "same-origin",
            headers: { "X-CSRF-Token": csrf, "Accept": "application/json" },
          });
          if (resp.ok) {
            const body = await resp.json();
            result.textContent = button.textContent + ": sent.";
            if (body.deployment && !location.pathname.endsWith("/" + body.deployment)) {
              location.assign("/ui/deployments/" + body.deployment);
            }
          } else {
            const page = new DOMParser().parseFromString(await resp.text(), "text/html");
            const err = page.getElementById("error");
            result.textContent = button.textContent + " refused (" + resp.status + "): " + (err ? err.textContent : "");
          }
        } finally {
          button.disabled = false;
        }
      });
    }
  }

  const config = $("config");
  render(JSON.parse($("initial").textContent));
  refreshTraffic(config.dataset.traffic, true);
  wireActions(config.dataset.csrf);
  const initial = JSON.parse($("initial").textContent);
  if (!FINAL.includes(initial.state)) follow(config.dataset.events);
})();
