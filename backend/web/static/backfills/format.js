// The status page's wording of a run (no DOM here, so that the tests run it in
// Node on the API's own JSON: tests/test_backfills_api.py). A stalled run says so
// instead of showing a rate or an ETA that nothing backs.
(function (root) {
  "use strict";

  var numbers = new Intl.NumberFormat();

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

  function rateText(run) {
    if (run.stalled) { return "stalled: nothing done for " + duration(run.stalled.seconds); }
    return run.rows_per_second === null ? "—" : numbers.format(run.rows_per_second) + " rows/s";
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

  var api = { numbers: numbers, time: time, duration: duration, rateText: rateText, etaText: etaText,
              stalledText: stalledText };
  root.BackfillsFormat = api;
  if (typeof module !== "undefined" && module.exports) { module.exports = api; }
})(typeof window !== "undefined" ? window : globalThis);
