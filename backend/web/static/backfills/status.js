// The backfill status page: polls GET /api/backfills (with If-None-Match, so an
// unchanged list costs a 304) and posts the controls. The admin token is asked
// once and kept in sessionStorage: this tab only, gone when it closes.
(function () {
  "use strict";

  var TOKEN_KEY = "backfills.adminToken";
  var API = document.body.dataset.api;
  var INTERVAL = Number(document.body.dataset.pollInterval) || 1500;

  var $ = function (id) { return document.getElementById(id); };
  var els = {
    login: $("login"), token: $("token"), loginError: $("login-error"), dashboard: $("dashboard"),
    runs: $("runs"), empty: $("empty"), announcer: $("announcer"), connection: $("connection"),
    forget: $("forget"), problem: $("problem"), template: $("run-template")
  };
  var format = window.BackfillsFormat;  // format.js, loaded first
  var numbers = format.numbers, time = format.time;
  var etag = null, timer = null, busy = false, again = false;
  var cards = {}, statuses = {};

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function authHeaders() {
    return { Authorization: "Bearer " + token(), Accept: "application/json" };
  }

  function showLogin(message) {
    clearTimeout(timer);
    etag = null;
    els.dashboard.hidden = true;
    els.forget.hidden = true;
    els.login.hidden = false;
    els.loginError.hidden = !message;
    els.loginError.textContent = message || "";
    setConnection("Not connected", "idle");
    els.token.focus();
  }

  function forgetToken(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    els.runs.textContent = "";
    cards = {};
    statuses = {};
    showLogin(message);
  }

  function setConnection(text, state) {
    els.connection.textContent = text;
    els.connection.dataset.state = state;
  }

  function setProblem(text) {
    els.problem.hidden = !text;
    els.problem.textContent = text || "";
  }

  function announce(text) {
    els.announcer.textContent = "";
    setTimeout(function () { els.announcer.textContent = text; }, 50);
  }

  async function errorMessage(response) {
    try { return (await response.json()).error.message; } catch (e) { return "HTTP " + response.status; }
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  function refreshNow() {
    etag = null;
    if (busy) { again = true; } else { schedule(0); }
  }

  async function poll() {
    if (!token()) { showLogin(); return; }
    if (busy) { again = true; return; }
    busy = true;
    var headers = authHeaders();
    if (etag) { headers["If-None-Match"] = etag; }
    try {
      var response = await fetch(API, { headers: headers, cache: "no-store" });
      if (response.status === 401) { busy = false; forgetToken("The token was refused: enter it again."); return; }
      if (response.status === 304) {
        live();
      } else if (response.ok) {
        var body = await response.json();
        etag = response.headers.get("ETag");
        render(body.items);
        live();
      } else {
        setProblem(await errorMessage(response));
        setConnection("Error " + response.status + ", retrying", "error");
      }
    } catch (e) {
      setConnection("Connection lost, retrying…", "error");
    }
    busy = false;
    if (again) { again = false; schedule(0); } else { schedule(INTERVAL); }
  }

  function live() {
    setProblem("");
    setConnection("Live · checked " + new Date().toLocaleTimeString(), "live");
  }

  // --- rendering ------------------------------------------------------------------

  function field(card, name) { return card.querySelector('[data-field="' + name + '"]'); }

  function createCard(run) {
    var card = els.template.content.firstElementChild.cloneNode(true);
    var prefix = "run-" + run.id;
    card.id = prefix;
    card.dataset.runId = run.id;
    var title = card.querySelector(".run-title");
    title.id = prefix + "-title";
    card.setAttribute("aria-labelledby", title.id);
    field(card, "progress").id = prefix + "-progress";
    var label = field(card, "progress-label");
    label.htmlFor = prefix + "-progress";
    label.textContent = "Progress of " + run.name + " (run " + run.id + ")";
    field(card, "actions").setAttribute("aria-label", "Controls of " + run.name + " (run " + run.id + ")");
    card.querySelectorAll("button[data-action]").forEach(function (button) {
      button.setAttribute("aria-label", button.textContent + " " + run.name + " (run " + run.id + ")");
    });
    return card;
  }

  function rowsText(run) {
    var scanned = numbers.format(run.rows_scanned);
    var text = run.rows_total === null ? scanned + " scanned"
      : scanned + " of " + numbers.format(run.rows_total) + (run.rows_total_exact ? "" : " (estimated)") + " scanned";
    return text + " · " + numbers.format(run.rows_done) + " changed";
  }

  function windowText(run) {
    if (run.status === "waiting" || run.wait_reason) {
      var text = "Waiting: " + (run.wait_reason || "outside its window");
      return run.next_window_at ? text + " · next try " + time(run.next_window_at) : text;
    }
    if (run.status === "running") { return "Open"; }
    return "—";
  }

  function update(card, run) {
    card.dataset.status = run.status;
    card.dataset.stalled = run.stalled ? "true" : "false";
    var stalled = field(card, "stalled");
    stalled.hidden = !run.stalled;
    if (stalled.textContent !== format.stalledText(run)) { stalled.textContent = format.stalledText(run); }
    field(card, "name").textContent = run.name;
    field(card, "id").textContent = "#" + run.id;
    var status = field(card, "status");
    status.textContent = run.status;
    status.className = "status status-" + run.status;
    var bar = field(card, "progress");
    if (run.percent === null) {
      bar.removeAttribute("value");
      bar.textContent = "unknown";
      field(card, "percent").textContent = "—";
    } else {
      bar.value = run.percent;
      bar.textContent = run.percent.toFixed(1) + "%";
      field(card, "percent").textContent = run.percent.toFixed(1) + "%";
    }
    field(card, "rows").textContent = rowsText(run);
    field(card, "rate").textContent = format.rateText(run);
    field(card, "eta").textContent = format.etaText(run);
    var batches = run.batches_done + " done · " + run.batches_failed + " failed · " + run.batches_in_flight + " in flight";
    if (run.batches_running) { batches += " (" + run.batches_running + " running)"; }
    field(card, "batches").textContent = batches;
    field(card, "batch-size").textContent = numbers.format(run.batch_size) + " rows, up to " + run.max_parallel + " at once";
    field(card, "window").textContent = windowText(run);
    field(card, "started").textContent = time(run.started_at);
    field(card, "activity").textContent = time(run.heartbeat_at || run.updated_at);
    field(card, "error-box").hidden = !run.last_error;
    field(card, "last-error").textContent = run.last_error || "";
    card.querySelectorAll("button[data-action]").forEach(function (button) {
      button.hidden = run.actions.indexOf(button.dataset.action) === -1;
    });
  }

  function render(items) {
    var seen = {};
    items.forEach(function (run, index) {
      seen[run.id] = true;
      var card = cards[run.id];
      if (!card) { card = cards[run.id] = createCard(run); }
      update(card, run);
      if (els.runs.children[index] !== card) { els.runs.insertBefore(card, els.runs.children[index] || null); }
      var before = statuses[run.id], now = run.status + (run.stalled ? " (stalled)" : "");
      if (before && before !== now) {
        announce("Run " + run.id + " (" + run.name + ") is now " + now + ".");
      }
      statuses[run.id] = now;
    });
    Object.keys(cards).forEach(function (id) {
      if (!seen[id]) { cards[id].remove(); delete cards[id]; delete statuses[id]; }
    });
    els.empty.hidden = items.length > 0;
  }

  // --- controls -------------------------------------------------------------------

  function showMessage(card, text) {
    var message = field(card, "message");
    message.textContent = text;
    message.hidden = !text;
  }

  async function act(button) {
    var card = button.closest(".run");
    var id = card.dataset.runId, action = button.dataset.action, label = button.textContent;
    var name = field(card, "name").textContent;
    var question = button.dataset.confirm;  // the server's controls say which ones ask first
    if (question && !window.confirm(label + " run " + id + " (" + name + ")? " + question)) {
      return;
    }
    button.disabled = true;
    try {
      var response = await fetch(API + "/" + encodeURIComponent(id) + "/" + action,
                                 { method: "POST", headers: authHeaders(), cache: "no-store" });
      if (response.status === 401) { forgetToken("The token was refused: enter it again."); return; }
      if (response.ok) {
        var run = await response.json();
        showMessage(card, "");
        announce(label + " of run " + id + " accepted: it is " + run.status + ".");
      } else {
        var message = label + " refused: " + await errorMessage(response);
        showMessage(card, message);
        announce("Run " + id + ": " + message);
      }
    } catch (e) {
      showMessage(card, "Could not reach the server: " + e.message);
    } finally {
      button.disabled = false;
      refreshNow();
    }
  }

  els.runs.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (button) { act(button); }
  });

  els.login.addEventListener("submit", function (event) {
    event.preventDefault();
    var value = els.token.value.trim();
    if (!value) { return; }
    sessionStorage.setItem(TOKEN_KEY, value);
    els.token.value = "";
    els.login.hidden = true;
    els.dashboard.hidden = false;
    els.forget.hidden = false;
    setConnection("Connecting…", "idle");
    refreshNow();
  });

  els.forget.addEventListener("click", function () { forgetToken(); });

  if (token()) {
    els.login.hidden = true;
    els.dashboard.hidden = false;
    els.forget.hidden = false;
    refreshNow();
  } else {
    showLogin();
  }
})();
