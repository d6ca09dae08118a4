// Small enhancements; every page works without them.
(function () {
  "use strict";
  // Show only the credential fields of the chosen mode.
  function applyModes(form) {
    var select = form.querySelector("[data-mode-select]");
    if (!select) return;
    form.querySelectorAll("[data-modes]").forEach(function (el) {
      var on = el.getAttribute("data-modes").split(" ").indexOf(select.value) >= 0;
      el.hidden = !on;
    });
  }
  document.querySelectorAll("form").forEach(function (form) {
    var select = form.querySelector("[data-mode-select]");
    if (select) { select.addEventListener("change", function () { applyModes(form); }); applyModes(form); }
    // After a passing validation, any change disables Create until Validate runs again.
    if (form.hasAttribute("data-watch")) {
      form.addEventListener("input", function (ev) {
        if (ev.target.readOnly) return;
        var create = form.querySelector('button[value="create"]');
        var stale = form.querySelector("[data-stale]");
        if (create && !create.disabled) { create.disabled = true; if (stale) stale.hidden = false; }
      });
    }
  });
  // Read the chosen credentials CSV into its text box (the file itself is never uploaded).
  document.querySelectorAll(".csv-file").forEach(function (input) {
    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      if (!file) return;
      var reader = new FileReader();
      reader.onload = function () {
        var target = document.getElementById(input.getAttribute("data-target"));
        target.value = String(reader.result);
        target.dispatchEvent(new Event("input", { bubbles: true }));
      };
      reader.readAsText(file);
    });
  });
  // Copy buttons.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      var text = source.value || source.textContent;
      var done = function () { var label = button.textContent; button.textContent = "Copied"; setTimeout(function () { button.textContent = label; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); }
      else { source.select(); document.execCommand("copy"); done(); }
    });
  });
  // Create export: the exact path of the first file, asked of the server as the name,
  // destination or file settings change (the same function the export's page uses).
  document.querySelectorAll("form[data-path-preview]").forEach(function (form) {
    var out = document.getElementById("path-preview");
    if (!out) return;
    var timer = null;
    function value(name) { var el = form.elements[name]; return el ? el.value : ""; }
    function update() {
      var q = new URLSearchParams({
        name: value("name"), destination_id: value("destination_id"), frequency: value("frequency"),
        format: value("format"), compression: value("compression"), layout: value("layout"),
        pgp: value("pgp_public_key").trim() ? "1" : ""
      });
      fetch("/exports/path?" + q.toString(), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          out.textContent = data.stream ? "A stream delivers each event to the stream as it arrives: no files."
            : (data.path || "Choose a frequency and a format to see the path.");
        });
    }
    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(update, 150); });
    form.addEventListener("change", update);
  });
  // Typing a name or ticking one chooses the option it belongs to ("Only these", "from a day").
  document.querySelectorAll("[data-picks]").forEach(function (el) {
    el.addEventListener("input", function () {
      var radio = document.getElementById(el.getAttribute("data-picks"));
      if (radio && (el.type !== "checkbox" || el.checked) && (el.type === "checkbox" || el.value)) radio.checked = true;
    });
  });
  // A running job: refresh its progress part of the page until the job has ended.
  function poll(el) {
    var every = parseInt(el.getAttribute("data-live"), 10) || 2000;
    setTimeout(function () {
      fetch(window.location.pathname, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          var fresh = html && new DOMParser().parseFromString(html, "text/html").getElementById(el.id);
          if (!fresh) { poll(el); return; }
          el.replaceWith(fresh);
          if (fresh.hasAttribute("data-live")) poll(fresh);
          else { var cancel = document.querySelector("form[action$='/cancel']"); if (cancel) cancel.hidden = true; }
        })
        .catch(function () { poll(el); });
    }, every);
  }
  document.querySelectorAll("[data-live]").forEach(poll);
})();
