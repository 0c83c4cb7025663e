// The dashboard's JavaScript: live parts re-rendered by the server, the driver log followed,
// and the pages' actions sent to the API with the session and its CSRF token. Every text
// from the server goes in as textContent or as the server's own escaped HTML.
"use strict";
(function () {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  function cookie(name) {
    const row = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return row ? decodeURIComponent(row.slice(name.length + 1)) : "";
  }

  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRFToken"] = cookie("csrftoken");
    const options = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (e) {
      return { ok: false, status: 0, data: { detail: "The server does not answer." } };
    }
    let data = null;
    try { data = await response.json(); } catch (e) { /* an empty or non-JSON body */ }
    return { ok: response.ok, status: response.status, data };
  }

  function problem(res) {
    return (res.data && res.data.detail) || `The server answered ${res.status}.`;
  }

  function say(box, text) {
    if (!box) return;
    box.textContent = text || "";
    box.hidden = !text;
  }

  // --- Live parts: <div data-live="?part=NAME" data-every="MS"> -------------------------
  const refreshers = new Map();

  function live(el) {
    let busy = false;
    let shown = null; // the last HTML swapped in: an unchanged part is not redrawn
    const refresh = async () => {
      if (busy) return;
      busy = true;
      try {
        const r = await fetch(el.dataset.live, { credentials: "same-origin" });
        if (r.redirected) { location.reload(); return; } // signed out meanwhile
        if (r.ok) {
          const html = await r.text();
          if (html !== shown) {
            el.innerHTML = html;
            shown = html;
          }
        }
      } catch (e) { /* the next tick tries again */ } finally { busy = false; }
      if (el.querySelector("[data-final]")) clearInterval(timer);
    };
    // data-every="0": refreshed only after the page's own changes (refreshAround).
    const every = el.dataset.every === undefined ? 3000 : +el.dataset.every;
    const timer = every > 0 ? setInterval(() => { if (!document.hidden) refresh(); }, every)
                            : null;
    refreshers.set(el, refresh);
  }

  function refreshAround(node) {
    const el = node.closest("[data-live]");
    if (el && refreshers.has(el)) refreshers.get(el)();
    else location.reload();
  }

  // --- Buttons that call the API: data-api="METHOD URL" [data-body] [data-confirm] -------
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-confirm], button[data-api]");
    if (!button) return;
    if (button.dataset.confirm && !confirm(button.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    if (!button.dataset.api) return; // a plain form's button, confirmed
    event.preventDefault();
    const [method, url] = button.dataset.api.split(" ");
    const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    button.disabled = true;
    const res = await api(method, url, body);
    button.disabled = false;
    if (!res.ok) { alert(problem(res)); return; }
    refreshAround(button);
  });

  // --- The driver log, followed like `dmarket jobs log --follow` -----------------------
  async function followLog(pre) {
    const state = document.querySelector("[data-log-state]");
    const page = 1000;
    let from = 0;
    for (;;) {
      const res = await api("GET", `${pre.dataset.log}?from=${from}&size=${page}`);
      if (!res.ok) {
        say(state, problem(res));
        await sleep(3000);
        continue;
      }
      const d = res.data;
      if (d.lines.length) {
        const bottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
        pre.append(d.lines.join("\n") + "\n");
        if (bottom) pre.scrollTop = pre.scrollHeight;
      }
      from = d.next;
      if (d.ended) {
        say(state, `The job ended: ${d.status}.`);
        pre.dataset.ended = "";
        return;
      }
      say(state, `Following the log (the job is ${d.status})…`);
      if (d.lines.length < page) await sleep(1000);
    }
  }

  // --- Executors and their logs ----------------------------------------------------------
  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    row.append(td);
    return td;
  }

  async function showExecutors(box) {
    const res = await api("GET", box.dataset.executors);
    if (!res.ok) { box.textContent = problem(res); return; }
    if (!res.data.length) { box.textContent = "No executor yet."; return; }
    const table = document.createElement("table");
    table.className = "rows";
    table.innerHTML = "<thead><tr><th>Executor</th><th>Host</th><th>Machine</th>" +
      "<th>Cores</th><th>Started</th><th>Ended</th><th>Core-seconds</th><th>Logs</th>" +
      "</tr></thead>";
    const body = document.createElement("tbody");
    const logView = document.createElement("pre");
    logView.className = "log";
    logView.hidden = true;
    for (const e of res.data) {
      const row = document.createElement("tr");
      [e.id, e.host, e.machine ? `#${e.machine}` : "", e.cores, (e.started_at || "").slice(0, 19),
        (e.ended_at || "running").slice(0, 19), e.core_seconds].forEach((v) => cell(row, v));
      const logs = cell(row, "");
      for (const [kind, url] of Object.entries(e.logs)) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = kind;
        b.addEventListener("click", async () => {
          const r = await api("GET", url);
          logView.hidden = false;
          logView.textContent = r.ok ? r.data.text || "(empty)" : problem(r);
        });
        logs.append(b, " ");
      }
      body.append(row);
    }
    table.append(body);
    box.replaceChildren(table, logView);
  }

  async function followExecutors(box) {
    const log = document.querySelector("[data-log]");
    for (;;) {
      const logView = box.querySelector("pre.log:not([hidden])");
      if (!logView) await showExecutors(box); // not while the user reads a log
      if (log && "ended" in log.dataset) {
        await sleep(3000); // the history server has the last executors shortly after
        if (!box.querySelector("pre.log:not([hidden])")) await showExecutors(box);
        return;
      }
      await sleep(5000);
    }
  }

  // --- Uploads, with progress ------------------------------------------------------------
  function put(url, file, sha256, progress) {
    return new Promise((resolve) => {
      const x = new XMLHttpRequest();
      x.open("PUT", url);
      x.setRequestHeader("X-CSRFToken", cookie("csrftoken"));
      x.setRequestHeader("Content-Type", "application/octet-stream");
      if (sha256) x.setRequestHeader("X-Content-SHA256", sha256);
      x.upload.onprogress = (e) => { if (e.lengthComputable) progress(e.loaded, e.total); };
      x.onload = () => {
        let data = null;
        try { data = JSON.parse(x.responseText); } catch (e) { /* not JSON */ }
        resolve({ ok: x.status >= 200 && x.status < 300, status: x.status, data });
      };
      x.onerror = () => resolve({ ok: false, status: 0,
                                  data: { detail: "The upload broke off." } });
      x.send(file);
    });
  }

  // Hashing reads the whole file into memory: only for files a job names (code, small data).
  const HASH_LIMIT = 256 * 1024 * 1024;

  async function sha256Of(file) {
    if (!(window.crypto && crypto.subtle) || file.size > HASH_LIMIT) return null;
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function progressBar(form) {
    const box = form.querySelector("[data-progress]");
    const bar = box.querySelector("progress");
    const label = box.querySelector("span");
    return (name, done, total) => {
      box.hidden = false;
      bar.value = total ? (100 * done) / total : 100;
      label.textContent = `${name}: ${Math.round(bar.value)} %`;
    };
  }

  const path = (name) => name.split("/").map(encodeURIComponent).join("/");

  // --- The files page: upload a new version ----------------------------------------------
  async function uploadFile(form, event) {
    event.preventDefault();
    const errors = form.querySelector("[data-errors]");
    say(errors, "");
    const file = form.elements.file.files[0];
    if (!file) { say(errors, "Choose a file."); return; }
    const name = form.elements.name.value.trim() || file.name;
    const show = progressBar(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    const query = form.elements.public.checked ? "?public=true" : "";
    const res = await put(form.dataset.files + path(name) + query, file, null,
                          (done, total) => show(name, done, total));
    button.disabled = false;
    if (!res.ok) { say(errors, problem(res)); return; }
    show(`${res.data.uri} stored`, 1, 1);
    form.reset();
    refreshAround(document.getElementById("files"));
  }

  async function showVersions(button) {
    const name = button.dataset.versions;
    const row = document.querySelector(`tr[data-versions-of="${CSS.escape(name)}"]`);
    if (!row.hidden) { row.hidden = true; return; }
    const base = document.getElementById("files").dataset.versionsBase.replace(/x$/, "");
    const res = await api("GET", base + path(name) + "?page_size=100");
    const td = row.querySelector("td");
    if (!res.ok) { td.textContent = problem(res); row.hidden = false; return; }
    const list = document.createElement("ul");
    for (const v of res.data.results) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = `${document.getElementById("files").dataset.filesBase}${path(name)}?version=${v.version}`;
      a.textContent = `version ${v.version}`;
      a.setAttribute("download", "");
      li.append(a, ` · ${v.size} bytes · ${v.created_at.slice(0, 19)} · sha256 ${v.sha256.slice(0, 16)}…`);
      list.append(li);
    }
    td.replaceChildren(list);
    row.hidden = false;
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-versions]");
    if (button) showVersions(button);
  });

  // --- The submit form ----------------------------------------------------------------------
  const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

  async function storedAs(form, file, show) {
    // As `dmarket jobs submit` names a local file: job-files/<first 16 of its SHA-256>/<name>,
    // reusing a version of the same bytes and name that the store holds already.
    if (!SEGMENT.test(file.name)) {
      throw new Error(`The store cannot keep the name ${file.name} (letters, digits, '.', '_' ` +
                      "and '-' only); rename the file.");
    }
    const sha256 = await sha256Of(file);
    let name;
    if (sha256) {
      const held = await api("GET", `${form.dataset.files}?sha256=${sha256}&page_size=100`);
      const same = held.ok && held.data.results.find((r) => r.name.split("/").pop() === file.name);
      if (same) return same.uri;
      name = `job-files/${sha256.slice(0, 16)}/${file.name}`;
    } else {
      const random = Array.from(crypto.getRandomValues(new Uint8Array(8)),
                                (b) => b.toString(16).padStart(2, "0")).join("");
      name = `job-files/${random}/${file.name}`;
    }
    const res = await put(form.dataset.files + path(name), file, sha256,
                          (done, total) => show(file.name, done, total));
    if (!res.ok) throw new Error(`${file.name}: ${problem(res)}`);
    return res.data.uri;
  }

  const lines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);

  async function submitJob(form, event) {
    event.preventDefault();
    const errors = form.querySelector("[data-errors]");
    say(errors, "");
    const f = form.elements;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const show = progressBar(form);
      const body = { name: f.name.value, app_params: f.app_params.value,
                     libs: lines(f.libs.value), archives: lines(f.archives.value),
                     max_credits: f.max_credits.value, machine_type: f.machine_type.value };
      for (const input of form.querySelectorAll("input[data-int]")) {
        if (input.value !== "") body[input.name] = Number(input.value);
      }
      body.entry_file = f.entry_file.value.trim();
      const entry = f.entry_upload.files[0];
      if (entry) body.entry_file = await storedAs(form, entry, show);
      if (!body.entry_file) throw new Error("Give an entry file: upload one or name a stored one.");
      for (const file of f.libs_upload.files) body.libs.push(await storedAs(form, file, show));
      for (const file of f.archives_upload.files) body.archives.push(await storedAs(form, file, show));
      const res = await api("POST", form.dataset.jobs, body);
      if (!res.ok) throw new Error(problem(res));
      location.assign(`/jobs/${res.data.id}/`);
    } catch (e) {
      say(errors, e.message);
      button.disabled = false;
    }
  }

  function quoteHourly(form) {
    const quote = JSON.parse(document.getElementById("quote").textContent);
    const out = form.querySelector("[data-hourly]");
    const update = () => {
      const cores = Number(form.elements.cores.value) || 0;
      const gpus = Number(form.elements.gpus_per_executor.value) || 0;
      let hourly = cores * Number(quote.effective.core || 0);
      if (gpus && quote.effective.gpu) hourly += gpus * Number(quote.effective.gpu);
      out.textContent = hourly.toFixed(6) + (gpus ? " (GPUs for one executor)" : "");
    };
    form.addEventListener("input", update);
    update();
  }

  // --- Inference: batch size ------------------------------------------------------------------
  async function setBatch(form, event) {
    event.preventDefault();
    const errors = form.querySelector("[data-errors]");
    say(errors, "");
    const res = await api("PATCH", form.dataset.url,
                          { batch_size: Number(form.elements.batch_size.value) });
    if (!res.ok) { say(errors, problem(res)); return; }
    form.querySelector("[data-done]").textContent = `Batch size ${res.data.batch_size} from the next batch.`;
    refreshAround(document.querySelector("[data-live]"));
  }

  // --- Charts (Chart.js, vendored; loaded on the pages that draw one) -----------------------
  // Lines differ in dash and point style as well as colour: readable without colour alone.
  const STYLES = [
    { borderColor: "#1f6feb", borderDash: [], pointStyle: "circle" },
    { borderColor: "#d1242f", borderDash: [6, 4], pointStyle: "triangle" },
    { borderColor: "#1a7f37", borderDash: [2, 3], pointStyle: "rect" },
    { borderColor: "#9a6700", borderDash: [10, 3, 2, 3], pointStyle: "rectRot" },
    { borderColor: "#8250df", borderDash: [12, 6], pointStyle: "star" },
  ];
  const styled = (i, dataset) => ({ ...STYLES[i % STYLES.length], backgroundColor: STYLES[i % STYLES.length].borderColor,
                                    pointRadius: 2, borderWidth: 2, ...dataset });
  const timeAxis = { type: "linear", ticks: { maxTicksLimit: 6,
    callback: (v) => new Date(v).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" }) } };

  function chart(canvas, config) {
    if (!window.Chart) { canvas.replaceWith("(The chart library did not load.)"); return null; }
    config.options = { responsive: true, maintainAspectRatio: false, animation: false,
                       interaction: { mode: "nearest", intersect: false }, ...config.options };
    return new window.Chart(canvas, config);
  }

  function creditsChart(canvas) {
    const series = JSON.parse(document.getElementById("credits-series").textContent);
    chart(canvas, { type: "line", data: { datasets: [
      styled(0, { label: "Balance", data: series.map((p) => ({ x: p.t, y: Number(p.balance) })), stepped: true }),
      styled(1, { label: "Spent", yAxisID: "flow", data: series.map((p) => ({ x: p.t, y: Number(p.spent) })) }),
      styled(2, { label: "Earned", yAxisID: "flow", data: series.map((p) => ({ x: p.t, y: Number(p.earned) })) }),
    ] }, options: { scales: { x: timeAxis,
      // Spending is often a small fraction of the balance: its own scale, on the right.
      y: { title: { display: true, text: "balance" } },
      flow: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
              title: { display: true, text: "spent, earned" } } } } });
  }

  async function machineChart(canvas) {
    const states = JSON.parse(document.getElementById("machine-states").textContent);
    const res = await api("GET", canvas.dataset.machineChart + "?page_size=500");
    if (!res.ok) { canvas.replaceWith(problem(res)); return; }
    const points = res.data.results.slice().reverse()
      .map((h) => ({ x: Date.parse(h.created_at), y: states.indexOf(h.state) }));
    if (points.length) points.push({ x: Date.now(), y: points[points.length - 1].y });
    chart(canvas, { type: "line", data: { datasets: [
      styled(0, { label: "State", data: points, stepped: true }),
    ] }, options: { scales: { x: timeAxis, y: { min: 0, max: states.length - 1,
      ticks: { stepSize: 1, callback: (v) => states[v] } } },
      plugins: { tooltip: { callbacks: { label: (c) => states[c.parsed.y] } } } } });
  }

  // The last 5 minutes of samples, one every 2 s.
  const RATE_POINTS = 150;

  function ratesChart(canvas) {
    const note = document.querySelector("[data-rates-note]");
    const c = chart(canvas, { type: "line", data: { datasets: [] },
      options: { scales: { x: timeAxis, y: { min: 0, title: { display: true, text: "queries/s, last 10 s" } } } } });
    if (!c) return;
    const sample = async () => {
      const res = await api("GET", canvas.dataset.ratesChart);
      if (!res.ok) { say(note, problem(res)); return; }
      const now = Date.now();
      for (const job of res.data.jobs) {
        const label = `#${job.job} ${job.name}`;
        let set = c.data.datasets.find((d) => d.label === label);
        if (!set) {
          set = styled(c.data.datasets.length, { label, data: [] });
          c.data.datasets.push(set);
        }
        set.data.push({ x: now, y: job.rate_10s });
        if (set.data.length > RATE_POINTS) set.data.shift();
      }
      c.update();
      const ratio = res.data.max_over_min;
      say(note, res.data.jobs.length
        ? res.data.jobs.map((j) => `#${j.job}: ${j.rate_10s.toFixed(1)}/s`).join(" · ") +
          (ratio ? ` · fastest/slowest ${ratio.toFixed(2)}` : "")
        : "No inference job of yours is running.");
    };
    sample();
    setInterval(() => { if (!document.hidden) sample(); }, 2000);
  }

  // --- Wiring -------------------------------------------------------------------------------
  document.querySelectorAll("[data-live]").forEach(live);
  document.querySelectorAll("[data-log]").forEach(followLog);
  document.querySelectorAll("[data-executors]").forEach(followExecutors);
  document.querySelectorAll("form[data-upload-form]").forEach((form) =>
    form.addEventListener("submit", (e) => uploadFile(form, e)));
  document.querySelectorAll("form[data-job-form]").forEach((form) => {
    form.addEventListener("submit", (e) => submitJob(form, e));
    quoteHourly(form);
  });
  document.querySelectorAll("form[data-batch-form]").forEach((form) =>
    form.addEventListener("submit", (e) => setBatch(form, e)));
  document.querySelectorAll("canvas[data-credits-chart]").forEach(creditsChart);
  document.querySelectorAll("canvas[data-machine-chart]").forEach(machineChart);
  document.querySelectorAll("canvas[data-rates-chart]").forEach(ratesChart);
})();
