// The status page's wording of a run (no DOM here, so that the tests run it in
// Node on the API's own JSON: tests/test_backfills_api.py and
// tests/test_status_page_wording.py). A stalled run says so instead of showing a
// rate or an ETA that nothing backs.
(function (root) {
  "use strict";

  var numbers = new Intl.NumberFormat();
  var ACTIVE = ["pending", "running", "paused", "waiting"];

  function time(value) {
    if (!value) { return "—"; }
    var moment = new Date(value);
    var today = moment.toDateString() === new Date().toDateString();
    return today ? moment.toLocaleTimeString() : moment.toLocaleString();
  }

  function duration(seconds) {
    seconds = Math.round(seconds);
    if (seconds < 60) { return seconds + " s"; }
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) { return minutes + " min " + (seconds % 60) + " s"; }
    var hours = Math.floor(minutes / 60);
    if (hours < 48) { return hours + " h " + (minutes % 60) + " min"; }
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  // Rows per second without decimals: "12,345 rows/s"; below one, said so.
  function rate(value) {
    if (value < 1) { return "under 1 row/s"; }
    return numbers.format(Math.round(value)) + " rows/s";
  }

  function rateText(run) {
    if (run.stalled) { return "stalled: nothing done for " + duration(run.stalled.seconds); }
    return run.rows_per_second === null ? "—" : rate(run.rows_per_second);
  }

  function etaText(run) {
    if (run.status === "completed") { return "Done"; }
    if (run.stalled) { return "unknown while stalled"; }
    if (run.eta_seconds === null) { return "—"; }
    if (run.windows_remaining !== null) {  // limited to maintenance windows
      var windows = run.windows_remaining + (run.windows_remaining === 1 ? " window" : " windows");
      return duration(run.eta_seconds) + " of work over " + windows +
        (run.estimated_finish_at ? ", done around " + time(run.estimated_finish_at) : "");
    }
    return duration(run.eta_seconds) + " (about " + time(run.eta_at) + ")";
  }

  function stalledText(run) {
    if (!run.stalled) { return ""; }
    return "Stalled since " + time(run.stalled.since) + ": " + run.stalled.reason +
      " The batches wait safely in the database.";
  }

  // "in flight" only while the run runs: a paused or waiting run's batches are
  // queued, and the ones still running are finishing.
  function batchesText(run) {
    var text = numbers.format(run.batches_done) + " done · " + numbers.format(run.batches_failed) + " failed";
    if (ACTIVE.indexOf(run.status) === -1 || !run.batches_in_flight) { return text; }
    if (run.status === "running") {
      text += " · " + numbers.format(run.batches_in_flight) + " in flight";
      return run.batches_running ? text + " (" + numbers.format(run.batches_running) + " running)" : text;
    }
    var queued = run.batches_in_flight - run.batches_running;
    if (queued) { text += " · " + numbers.format(queued) + (queued === 1 ? " batch" : " batches") + " queued"; }
    if (run.batches_running) { text += " · " + numbers.format(run.batches_running) + " finishing"; }
    return text;
  }

  // Who paused or cancelled the run, when and why (the API's last_control).
  function controlText(run) {
    var control = run.last_control;
    if (!control) { return ""; }
    var verb = control.status === "paused" ? "Paused" : "Cancelled";
    return verb + " by " + control.actor + " at " + time(control.at) + ": " +
      (control.reason || "no reason given") + ".";
  }

  // A finished run: when, how long it took, and for a completed one its average rate.
  function finishedText(run) {
    if (!run.finished_at) { return ""; }
    var text = time(run.finished_at);
    if (!run.started_at) { return text; }
    var seconds = (new Date(run.finished_at) - new Date(run.started_at)) / 1000;
    text += " · took " + duration(seconds);
    if (run.status === "completed" && seconds > 0 && run.rows_scanned > 0) {
      text += " · " + rate(run.rows_scanned / seconds) + " on average";
    }
    return text;
  }

  // The progress bar: a value, or indeterminate (animated) only while a running
  // run's total is unknown. A pending or stopped run never looks busy.
  function barState(run) {
    if (run.percent !== null) { return { value: run.percent, indeterminate: false }; }
    return { value: 0, indeterminate: run.status === "running" };
  }

  var api = { numbers: numbers, time: time, duration: duration, rate: rate, rateText: rateText,
              etaText: etaText, stalledText: stalledText, batchesText: batchesText, controlText: controlText,
              finishedText: finishedText, barState: barState };
  root.BackfillsFormat = api;
  if (typeof module !== "undefined" && module.exports) { module.exports = api; }
})(typeof window !== "undefined" ? window : globalThis);
