/* The connection pages' small helpers; everything works without them.
   - [data-copy="#id"] buttons copy that input's value (the reauthorization link);
   - the add page shows only the chosen provider source and the chosen preset's gotcha. */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var input = document.querySelector(button.getAttribute("data-copy"));
    if (!input) return;
    input.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () {
        document.execCommand("copy"); done();
      });
    } else {
      document.execCommand("copy"); done();
    }
  });

  function showSource(form) {
    var chosen = form.querySelector("input[name=source]:checked");
    var sections = form.querySelectorAll(".source-section");
    for (var i = 0; i < sections.length; i++) {
      sections[i].hidden = !!chosen && sections[i].dataset.source !== chosen.value;
    }
  }

  function showPresetNote(form) {
    var select = form.querySelector("select[name=preset]");
    var target = document.getElementById("preset-note");
    if (!select || !target) return;
    var source = select.value && form.querySelector('[data-preset-note="' + select.value + '"] dd');
    target.textContent = source ? "Note: " + source.textContent.replace(/\s+/g, " ").trim() : "";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector(".connection-form");
    if (!form) return;
    document.documentElement.classList.add("js");
    showSource(form);
    showPresetNote(form);
    form.addEventListener("change", function (event) {
      if (event.target.name === "source") showSource(form);
      if (event.target.name === "preset") showPresetNote(form);
    });
  });
})();
