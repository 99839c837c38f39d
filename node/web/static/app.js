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

function save(form, fieldset) {
  var item = fieldset.getAttribute("data-item");
  var status = fieldset.querySelector(".status");
  var data = new FormData();
  data.append("csrf", form.elements["csrf"].value);
  var checked = fieldset.querySelector("input[type=radio]:checked");
  data.append("answer." + item, checked ? checked.value : "");
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
      status.textContent = form.getAttribute("data-saved");
      if (body.scores) {
        document.getElementById("scores").innerHTML = body.scores;
      }
    });
  }).catch(function (err) {
    status.textContent = "";
    var span = document.createElement("span");
    span.className = "error";
    span.setAttribute("role", "alert");
    span.textContent = form.getAttribute("data-failed") + " " + err.message;
    status.appendChild(span);
  });
}
