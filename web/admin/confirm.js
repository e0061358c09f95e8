// A modal confirmation (the <dialog id="confirm"> of index.html): resolves true when confirmed.

import { $ } from "./dom.js";

export function confirmAction(title, text, okLabel) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.returnValue = "";
    dialog.addEventListener("close", () => {
      if (opener instanceof HTMLElement) opener.focus();
      resolve(dialog.returnValue === "ok");
    }, { once: true });
    dialog.showModal(); // focus lands on Cancel, the first button: the safe choice
  });
}
