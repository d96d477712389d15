// The action URI form's "Preview" button: without this script it opens the preview page in a
// new tab; with it, the same view answers JSON and the result is shown under the button.
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest(".dc-preview-button");
  if (!button) return;
  event.preventDefault();
  const box = button.parentElement.querySelector(".dc-preview-result");
  const line = (text, tag = "p") => Object.assign(document.createElement(tag), { textContent: text });
  try {
    const response = await fetch(button.formAction, {
      method: "POST", body: new FormData(button.form), credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(`the preview answered ${response.status}`);
    const result = await response.json();
    if (!result.ok) {
      const list = Object.assign(document.createElement("ul"), { className: "errorlist" });
      list.append(...result.errors.map((error) => line(error, "li")));
      box.replaceChildren(list);
      return;
    }
    const who = result.appointment === "sample" ? "the sample" : result.appointment;
    const parts = [line(`${result.request_type} (rendered for ${who}):`), line(result.uri, "code")];
    for (const [name, value] of Object.entries(result.form_fields)) {
      parts.push(line(`form field ${name} = ${value}`));
    }
    box.replaceChildren(...parts);
  } catch (error) {
    box.replaceChildren(line(`No preview: ${error.message}.`));
  }
});
