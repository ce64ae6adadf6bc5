// dhanhook dashboard: the token countdown, the recent-legs filters, and a confirmation before
// the kill switch or a token refresh. Served from /ui/app.js (the page's CSP allows only
// scripts from this origin). It only reads the page; every value in it was escaped by the
// server, and this script writes text, never HTML.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Token expiry countdown, from the server's seconds-left figure.
  const started = Date.now();
  const countdowns = document.querySelectorAll(".countdown[data-seconds]");
  const tick = () => {
    countdowns.forEach((el) => {
      const left = Number(el.dataset.seconds) - Math.floor((Date.now() - started) / 1000);
      if (left <= 0) {
        el.textContent = "expired";
        return;
      }
      const h = Math.floor(left / 3600);
      const m = String(Math.floor((left % 3600) / 60)).padStart(2, "0");
      const s = String(left % 60).padStart(2, "0");
      el.textContent = `${h}h ${m}m ${s}s`;
    });
  };
  if (countdowns.length) {
    tick();
    setInterval(tick, 1000);
  }

  // Filters of the recent-legs table (status, symbol, strategy, date).
  const table = document.getElementById("legs");
  const inputs = ["f-status", "f-symbol", "f-strategy", "f-date"].map((id) => document.getElementById(id));
  const apply = () => {
    if (!table) return;
    const [status, symbol, strategy, date] = inputs.map((i) => (i ? i.value.trim().toLowerCase() : ""));
    table.querySelectorAll("tbody tr").forEach((row) => {
      const d = row.dataset;
      const show =
        (!status || d.status.toLowerCase() === status) &&
        (!symbol || d.symbol.toLowerCase().includes(symbol)) &&
        (!strategy || d.strategy.toLowerCase().includes(strategy)) &&
        (!date || d.date === date);
      row.hidden = !show;
    });
  };
  inputs.forEach((i) => {
    if (!i) return;
    i.addEventListener("input", apply);
    i.addEventListener("change", apply);
  });

  // A confirmation before acts that change what happens to orders.
  const confirmations = {
    "kill-on": "Turn the kill switch ON? New orders will be refused until it is turned off.",
    "kill-off": "Turn the kill switch off? New alerts will place orders again.",
    "refresh-token": "Get a new Dhan token now? This replaces the token in use.",
  };
  document.querySelectorAll("form.act button").forEach((button) => {
    const key = Object.keys(confirmations).find((k) => button.classList.contains(k));
    if (!key) return;
    button.form.addEventListener("submit", (event) => {
      if (!window.confirm(confirmations[key])) {
        event.preventDefault();
      }
    });
  });
});
