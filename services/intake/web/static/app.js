// Lethe admin UI: confirmations, live progress over server-sent events, submit form toggles.
"use strict";

function fmtDuration(s) {
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
  return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
}

function applyProgress(v) {
  document.querySelectorAll('[data-job="' + v.id + '"]').forEach(function (el) {
    var bar = el.querySelector("progress");
    if (bar) { bar.value = v.percent; bar.textContent = v.percent + "%"; }
    var pct = el.querySelector(".pct");
    if (pct) pct.textContent = v.percent.toFixed(1) + "%";
    var rate = el.querySelector(".rate");
    if (rate) rate.textContent = v.rows_per_second ? Math.round(v.rows_per_second).toLocaleString("en") + " rows/s" : "";
    var eta = el.querySelector(".eta");
    if (eta) eta.textContent = (v.eta_seconds && !v.final) ? "ETA " + fmtDuration(v.eta_seconds) : "";
  });
  document.querySelectorAll('[data-status="' + v.id + '"]').forEach(function (el) {
    el.textContent = v.status.replace(/_/g, " ");
    el.className = "badge st-" + v.status;
  });
  document.querySelectorAll('[data-phase="' + v.id + '"]').forEach(function (el) {
    el.textContent = v.phase.replace(/_/g, " ");
  });
  document.querySelectorAll('[data-done="' + v.id + '"]').forEach(function (el) {
    el.textContent = (v.done || 0).toLocaleString("en");
  });
  document.querySelectorAll('[data-total="' + v.id + '"]').forEach(function (el) {
    el.textContent = v.total ? v.total.toLocaleString("en") : "—";
  });
  var words = document.getElementById("status-words");
  if (words) {
    var map = JSON.parse(words.textContent);
    document.querySelectorAll('[data-words="' + v.id + '"]').forEach(function (el) {
      el.textContent = map[v.status] || v.status;
    });
  }
  if (v.final) {
    document.querySelectorAll("[data-final-note]").forEach(function (el) { el.hidden = false; });
  }
}

function follow(el) {
  var src = new EventSource(el.getAttribute("data-stream"));
  src.addEventListener("progress", function (e) { applyProgress(JSON.parse(e.data)); });
  src.addEventListener("end", function () { src.close(); });
}

function toggles(form) {
  function value(name) {
    var c = form.querySelector('[name="' + name + '"]:checked') || form.querySelector('select[name="' + name + '"]');
    return c ? c.value : "";
  }
  function update() {
    ["type", "scope", "regulation"].forEach(function (name) {
      form.querySelectorAll("[data-when-" + name + "]").forEach(function (el) {
        el.hidden = el.getAttribute("data-when-" + name) !== value(name);
      });
    });
  }
  form.addEventListener("change", update);
  update();
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
    });
  });
  document.querySelectorAll("[data-stream]").forEach(follow);
  var submit = document.getElementById("submit-form");
  if (submit) toggles(submit);
  document.querySelectorAll("input.copy").forEach(function (i) {
    i.addEventListener("focus", function () { i.select(); });
  });
});

// Bulk request: a chosen CSV file is read into the form's text field (sent with the form).
document.querySelectorAll("input[type=file][data-fills]").forEach(function (input) {
  input.addEventListener("change", function () {
    var target = document.getElementById(input.dataset.fills);
    if (!target || !input.files.length) return;
    input.files[0].text().then(function (text) { target.value = text; });
  });
});
