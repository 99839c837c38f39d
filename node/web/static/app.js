// Cairn web interface: the little JavaScript there is. Every form works
// without it; with it, each answer of a checklist is saved as it is given.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-autosave]").forEach(function (form) {
    form.addEventListener("change", function (ev) {
      var fieldset = ev.target.closest("fieldset[data-item]");
      if (fieldset) {
        save(form, fieldset);
      }
    });
  });
});

// save sends one item's answer and note. A note typed before an answer is
// chosen waits for the answer (it is sent with it); only the answer to
// the latest request of an item is shown.
function save(form, fieldset) {
  var item = fieldset.getAttribute("data-item");
  var status = fieldset.querySelector(".status");
  var checked = fieldset.querySelector("input[type=radio]:checked");
  if (!checked) {
    status.textContent = form.getAttribute("data-pick");
    return;
  }
  var seq = (Number(fieldset.getAttribute("data-seq")) || 0) + 1;
  fieldset.setAttribute("data-seq", String(seq));
  var latest = function () { return fieldset.getAttribute("data-seq") === String(seq); };
  var data = new FormData();
  data.append("csrf", form.elements["csrf"].value);
  data.append("answer." + item, checked.value);
  data.append("note." + item, fieldset.querySelector("textarea").value);
  status.textContent = form.getAttribute("data-saving");
  fetch(form.action, {
    method: "POST",
    body: new URLSearchParams(data),
    headers: { "Accept": "application/json" },
    credentials: "same-origin"
  }).then(function (resp) {
    return resp.json().then(function (body) {
      if (!resp.ok) {
        throw new Error(body.error || resp.statusText);
      }
      if (!latest()) {
        return;
      }
      status.textContent = form.getAttribute("data-saved");
      if (body.scores) {
        document.getElementById("scores").innerHTML = body.scores;
      }
    });
  }).catch(function (err) {
    if (!latest()) {
      return;
    }
    status.textContent = "";
    var span = document.createElement("span");
    span.className = "error";
    span.setAttribute("role", "alert");
    span.textContent = form.getAttribute("data-failed") + " " + err.message;
    status.appendChild(span);
  });
}
