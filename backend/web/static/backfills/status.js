// The backfill status page: polls GET /api/backfills (with If-None-Match, so an
// unchanged page of runs costs a 304), a page at a time with the filters chosen,
// and posts the controls. The token is asked once and kept by token.js.
(function () {
  "use strict";

  var body = document.body.dataset;
  var API = body.api;
  var INTERVAL = Number(body.pollInterval) || 1500;
  var PAGE_SIZE = Number(body.pageSize) || 20;

  var $ = function (id) { return document.getElementById(id); };
  var els = {
    login: $("login"), token: $("token"), remember: $("remember"), loginError: $("login-error"),
    dashboard: $("dashboard"), runs: $("runs"), empty: $("empty"), announcer: $("announcer"),
    connection: $("connection"), forget: $("forget"), problem: $("problem"), template: $("run-template"),
    access: $("access"), notice: $("notice"), filters: $("filters"), filterStatus: $("filter-status"),
    filterName: $("filter-name"), older: $("older"), newest: $("newest")
  };
  var tokens = window.BackfillsToken;  // token.js and card.js, loaded first
  var cardView = window.BackfillsCard;
  var etag = null, timer = null, busy = false, again = false;
  var cards = {}, statuses = {};
  var access = null;
  var query = { status: "", name: "", cursor: "" }, nextCursor = null;

  function listUrl() {
    var params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    Object.keys(query).forEach(function (key) { if (query[key]) { params.set(key, query[key]); } });
    return API + "?" + params.toString();
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
    tokens.forget();
    access = null;
    els.access.hidden = true;
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

  function refused() {
    return tokens.fromProxy() ? "The token your proxy sends was refused: enter a token." : "The token was refused: enter it again.";
  }

  function showDisabled(message) {
    clearTimeout(timer);
    els.dashboard.hidden = true;
    els.login.hidden = true;
    setProblem(message);
    setConnection("API disabled", "error");
  }

  async function poll() {
    if (!tokens.connected()) { showLogin(); return; }
    if (busy) { again = true; return; }
    busy = true;
    var headers = tokens.headers();
    if (etag) { headers["If-None-Match"] = etag; }
    try {
      var response = await fetch(listUrl(), { headers: headers, cache: "no-store" });
      if (response.status === 401) { busy = false; forgetToken(refused()); return; }
      if (response.status === 503) { busy = false; showDisabled(await errorMessage(response)); return; }
      if (response.status === 304) {
        live();
      } else if (response.ok) {
        var page = await response.json();
        etag = response.headers.get("ETag");
        setAccess(page.access);
        render(page.items);
        setPager(page.next_cursor);
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

  // What the token may do, as the API says: a read-only one sees no buttons, and
  // only a read-only one is remembered on this device when asked.
  function setAccess(value) {
    access = value;
    els.access.hidden = value !== "read";
    var told = tokens.settle(value);
    if (told) { showNotice(told); }
  }

  function showNotice(text) {
    els.notice.textContent = text;
    els.notice.hidden = !text;
  }

  function setPager(cursor) {
    nextCursor = cursor;
    els.older.hidden = !cursor;
    els.newest.hidden = !query.cursor;
  }

  function changeQuery(changes) {
    Object.keys(changes).forEach(function (key) { query[key] = changes[key]; });
    els.runs.textContent = "";
    cards = {};
    statuses = {};
    refreshNow();
  }

  // --- rendering ------------------------------------------------------------------

  var field = cardView.field;

  function render(items) {
    var seen = {};
    items.forEach(function (run, index) {
      seen[run.id] = true;
      var card = cards[run.id];
      if (!card) { card = cards[run.id] = cardView.create(els.template, run); }
      cardView.update(card, run, access === "read");
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
    els.empty.textContent = query.status || query.name ? "No run matches these filters." : "No backfill run yet.";
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
                                 { method: "POST", headers: tokens.headers(), cache: "no-store" });
      if (response.status === 401) { forgetToken(refused()); return; }
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
    tokens.enter(value, els.remember.checked);
    els.token.value = "";
    els.remember.checked = false;
    els.login.hidden = true;
    els.dashboard.hidden = false;
    els.forget.hidden = false;
    setConnection("Connecting…", "idle");
    refreshNow();
  });

  els.forget.addEventListener("click", function () { showNotice(""); forgetToken(); });

  els.filters.addEventListener("submit", function (event) {
    event.preventDefault();
    changeQuery({ status: els.filterStatus.value, name: els.filterName.value.trim(), cursor: "" });
  });
  els.filterStatus.addEventListener("change", function () {
    changeQuery({ status: els.filterStatus.value, cursor: "" });
  });
  els.older.addEventListener("click", function () { if (nextCursor) { changeQuery({ cursor: nextCursor }); } });
  els.newest.addEventListener("click", function () { changeQuery({ cursor: "" }); });

  if (body.apiEnabled === "false") {
    setConnection("API disabled", "error");  // the page says why; no token to ask for
  } else if (tokens.connected()) {
    els.login.hidden = true;
    els.dashboard.hidden = false;
    els.forget.hidden = tokens.fromProxy();
    refreshNow();
  } else {
    showLogin();
  }
})();
