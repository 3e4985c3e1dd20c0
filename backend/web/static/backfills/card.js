// One run's card on the status page: built from the page's <template> and filled
// from the API's JSON with textContent only (never HTML). The wording is format.js's.
(function (root) {
  "use strict";

  var format = root.BackfillsFormat;  // format.js, loaded first
  var numbers = format.numbers, time = format.time;

  function field(card, name) { return card.querySelector('[data-field="' + name + '"]'); }

  function create(template, run) {
    var card = template.content.firstElementChild.cloneNode(true);
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
    var build = run.job && run.job.progress;  // a schema job's index build (docs/index-jobs.md)
    if (build) {
      return "Building: " + build.phase + (build.blocks_total
        ? " · blocks " + numbers.format(build.blocks_done) + " of " + numbers.format(build.blocks_total) : "");
    }
    var scanned = numbers.format(run.rows_scanned);
    var text = run.rows_total === null ? scanned + " scanned"
      : scanned + " of " + numbers.format(run.rows_total) + (run.rows_total_exact ? "" : " (estimated)") + " scanned";
    return text + " · " + numbers.format(run.rows_done) + " changed";
  }

  function showBar(card, run) {
    var bar = field(card, "progress"), state = format.barState(run);
    if (state.indeterminate) {
      bar.removeAttribute("value");
    } else {
      bar.value = state.value;
    }
    var shown = run.percent === null ? "—" : run.percent.toFixed(1) + "%";
    bar.textContent = run.percent === null ? "unknown" : shown;
    field(card, "percent").textContent = shown;
  }

  function windowText(run) {
    if (run.status === "waiting" || run.wait_reason) {
      var text = "Waiting: " + (run.wait_reason || "outside its window");
      return run.next_window_at ? text + " · next try " + time(run.next_window_at) : text;
    }
    if (run.status === "running") { return "Open"; }
    return "—";
  }

  // `readOnly`: the token may not control runs, so no button shows.
  function update(card, run, readOnly) {
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
    showBar(card, run);
    var control = field(card, "control");
    control.hidden = !run.last_control;
    control.textContent = format.controlText(run);
    field(card, "rows").textContent = rowsText(run);
    field(card, "rate").textContent = format.rateText(run);
    field(card, "eta").textContent = format.etaText(run);
    field(card, "batches").textContent = format.batchesText(run);
    field(card, "finished-box").hidden = !run.finished_at;
    field(card, "finished").textContent = format.finishedText(run);
    field(card, "batch-size").textContent = numbers.format(run.batch_size) + " rows, up to " + run.max_parallel + " at once";
    field(card, "window").textContent = windowText(run);
    field(card, "started").textContent = time(run.started_at);
    field(card, "activity").textContent = time(run.heartbeat_at || run.updated_at);
    field(card, "error-box").hidden = !run.last_error;
    field(card, "last-error").textContent = run.last_error || "";
    card.querySelectorAll("button[data-action]").forEach(function (button) {
      button.hidden = readOnly || run.actions.indexOf(button.dataset.action) === -1;
    });
  }

  root.BackfillsCard = { create: create, update: update, field: field };
})(window);
