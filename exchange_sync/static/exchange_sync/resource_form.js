// The resource form's rules "Preview" button: without this script it opens the preview page
// in a new tab; with it, the same view answers only its table, shown under the button.
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest(".dc-rules-preview-button");
  if (!button) return;
  event.preventDefault();
  const box = button.parentElement.querySelector(".dc-rules-preview-result");
  const body = new FormData(button.form);
  body.set(button.name, button.value);
  try {
    const response = await fetch(button.formAction, {
      method: "POST", body, credentials: "same-origin", headers: { "X-DC-Fragment": "1" },
    });
    if (!response.ok) throw new Error(`the preview answered ${response.status}`);
    box.innerHTML = await response.text();
  } catch (error) {
    box.replaceChildren(Object.assign(document.createElement("p"), {
      textContent: `No preview: ${error.message}.`,
    }));
  }
});
