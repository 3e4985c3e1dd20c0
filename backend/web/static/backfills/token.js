// Where the status page's token lives (backend/web/backfills/page.py says why):
// the admin token in sessionStorage (this tab only, gone when it closes); a
// read-only token, when asked, in localStorage (a wall display survives a reboot),
// and only once the API has said it is read-only; behind a proxy that adds the
// token (data-auth="proxy"), none at all.
(function (root) {
  "use strict";

  var TAB_KEY = "backfills.adminToken";
  var READ_TOKEN_KEY = "backfills.readToken";  // localStorage: read-only tokens only

  var proxy = document.body.dataset.auth === "proxy";
  var rememberAsked = false;

  function value() { return sessionStorage.getItem(TAB_KEY) || localStorage.getItem(READ_TOKEN_KEY); }

  // A token typed into the form: in this tab until the API says what it may do.
  function enter(token, remember) {
    localStorage.removeItem(READ_TOKEN_KEY);
    sessionStorage.setItem(TAB_KEY, token);
    rememberAsked = remember;
  }

  // The API's `access` for the token in use; returns what to tell the operator, if anything.
  function settle(access) {
    if (!rememberAsked) { return ""; }
    rememberAsked = false;
    var typed = sessionStorage.getItem(TAB_KEY);
    if (access === "read" && typed) {
      localStorage.setItem(READ_TOKEN_KEY, typed);
      sessionStorage.removeItem(TAB_KEY);
      return "This read-only token is remembered on this device until you forget it.";
    }
    return access === "control" ? "Not remembered: this token can control runs, so it stays in this tab only." : "";
  }

  function forget() {
    sessionStorage.removeItem(TAB_KEY);
    localStorage.removeItem(READ_TOKEN_KEY);
    proxy = false;  // a proxy's token was refused: ask for one
  }

  root.BackfillsToken = {
    enter: enter,
    settle: settle,
    forget: forget,
    connected: function () { return proxy || Boolean(value()); },
    fromProxy: function () { return proxy; },
    headers: function () {
      var headers = { Accept: "application/json" };
      if (!proxy) { headers.Authorization = "Bearer " + value(); }
      return headers;
    }
  };
})(window);
